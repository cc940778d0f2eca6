/**
 * Installation of the plugin onto a host (the DaemonSet's init step).
 *
 * @module
 */

export * from "./install.ts";
export * from "./uninstall.ts";
