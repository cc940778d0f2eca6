/**
 * The CNI protocol: environment, versions, results, errors. Pure: it
 * knows nothing of this plugin (the wiring is lib/plugin).
 *
 * @module
 */

export * from "./errors.ts";
export * from "./env.ts";
export * from "./version.ts";
export * from "./result.ts";
