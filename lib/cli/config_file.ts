/**
 * `-f FILE` of `explain` and `status`: the galactic network configuration in
 * what an operator has at hand, a NetworkAttachmentDefinition (YAML or JSON,
 * e.g. `kubectl get net-attach-def x -o yaml`), a CNI network config or a
 * conflist. The file must hold exactly one galactic configuration; it is
 * validated by the plugin's own parser, so errors name the config field.
 *
 * @module
 */

import { parseAllDocuments } from "yaml";
import { loadNodeConfig, type NetworkConfig, parseNetworkConfig } from "../config/mod.ts";

/** Larger files are refused unread: a NAD is a few KiB. */
export const MAX_CONFIG_FILE_BYTES = 1 << 20;

/** A galactic configuration read from a file. */
export interface ConfigFromFile {
  /** The configuration object as the plugin would receive it on stdin. */
  readonly raw: Record<string, unknown>;
  /** The validated configuration. */
  readonly config: NetworkConfig;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The galactic configurations inside one parsed document. */
function galacticConfigs(document: unknown, where: string): Record<string, unknown>[] {
  if (!isRecord(document)) return [];
  if (document.kind === "NetworkAttachmentDefinition") {
    const spec = document.spec;
    const text = isRecord(spec) ? spec.config : undefined;
    if (typeof text !== "string") {
      throw new Error(`${where}: NetworkAttachmentDefinition has no spec.config string`);
    }
    let inner: unknown;
    try {
      inner = JSON.parse(text);
    } catch (error) {
      throw new Error(`${where}: spec.config is not JSON: ${(error as Error).message}`);
    }
    return galacticConfigs(inner, `${where} spec.config`);
  }
  if (Array.isArray(document.plugins)) {
    // A conflist: the plugin gets its own entry plus the list's name and version (libcni).
    return document.plugins.filter((p) => isRecord(p) && p.type === "galactic").map((p) => ({
      ...(p as Record<string, unknown>),
      name: document.name,
      cniVersion: document.cniVersion,
    }));
  }
  return document.type === "galactic" ? [document] : [];
}

/** Parses file text (JSON, or YAML with one or more documents). */
function documentsOf(text: string, path: string): unknown[] {
  try {
    return [JSON.parse(text)];
  } catch { /* not JSON: try YAML */ }
  const documents = parseAllDocuments(text);
  const list = Array.isArray(documents) ? documents : [documents];
  for (const document of list) {
    const [error] = document.errors;
    if (error) throw new Error(`${path} is neither JSON nor YAML: ${error.message}`);
  }
  return list.map((document) => document.toJS());
}

/**
 * Reads the one galactic configuration of `path`, with the node's settings
 * from the node configuration `env` names (as the plugin would).
 */
export async function readConfigFile(
  path: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<ConfigFromFile> {
  let bytes: Uint8Array;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new Error("not a regular file");
    if (info.size > MAX_CONFIG_FILE_BYTES) {
      throw new Error(`larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
    }
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`cannot read -f ${path}: ${(error as Error).message}`);
  }
  const text = new TextDecoder().decode(bytes);
  const configs = documentsOf(text, path).flatMap((document, i) =>
    galacticConfigs(document, `${path} document ${i + 1}`)
  );
  if (configs.length !== 1) {
    throw new Error(
      `${path} holds ${configs.length} galactic network configurations; -f needs exactly one ` +
        "(a NetworkAttachmentDefinition, a network config or a conflist)",
    );
  }
  const raw = configs[0]!;
  try {
    return { raw, config: parseNetworkConfig(raw, loadNodeConfig(env)) };
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`);
  }
}
