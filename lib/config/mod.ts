/**
 * Network configuration parsing and validation.
 *
 * @module
 */

export * from "./network_config.ts";
export * from "./node_config.ts";
export * from "./runtime_requests.ts";
