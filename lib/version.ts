/**
 * The plugin's own release version.
 *
 * @module
 */

/** Release version, printed by `galactic version`. */
export const PLUGIN_VERSION = "0.1.0";
