/**
 * Network configuration parsing and validation.
 *
 * @module
 */

export * from "./network_config.ts";
