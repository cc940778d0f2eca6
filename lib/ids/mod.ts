/**
 * Identifiers the plugin derives from a VPC attachment: interface names,
 * SRv6 endpoint, route distinguisher/target, Kubernetes names and labels.
 *
 * @module
 */

export * from "./base62.ts";
export * from "./vpc.ts";
export * from "./ip.ts";
export * from "./interface_names.ts";
export * from "./srv6_endpoint.ts";
export * from "./route_distinguisher.ts";
export * from "./object_names.ts";
export * from "./mac.ts";
