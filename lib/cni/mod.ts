/**
 * The CNI protocol: environment, versions, results, errors, dispatch.
 *
 * @module
 */

export * from "./errors.ts";
export * from "./env.ts";
export * from "./version.ts";
export * from "./result.ts";
export * from "./invocation.ts";
