/**
 * Static checks of the deployment: manifests/, clab/ and docs/deployment.md
 * against the code they deploy (RBAC lists, install flags, config parser).
 * No cluster, no root; `kubectl kustomize` runs only when kubectl exists.
 */

import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, type Option } from "commander";
import { parseAllDocuments } from "yaml";
import { DEFAULT_HEALTH_PORT, registerAgentCommand } from "../../lib/cli/agent_command.ts";
import { registerInstallCommand } from "../../lib/cli/install_command.ts";
import { DEFAULTS, parseNetworkConfig } from "../../lib/config/mod.ts";
import { type IpPrefix, parseIp, parsePrefix, parseVpc } from "../../lib/ids/mod.ts";
import {
  DEFAULT_CNI_BIN_DIR,
  DEFAULT_CONFIG_DIR,
  PLUGIN_BINARY_NAME,
} from "../../lib/install/mod.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { PLUGIN_RBAC, type RbacRule } from "../../lib/kube/rbac.ts";
import { admit, describeErrors, servedVersion } from "../support/cosmos/admission.ts";
import { COSMOS_CRDS } from "../support/cosmos/crds.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const MANIFESTS = join(ROOT, "manifests");
const CLAB = join(ROOT, "clab");
const SITES = ["iad", "sjc", "dfw"] as const;
const NAMESPACE = "galactic-system";

// ---------------------------------------------------------------- helpers ---

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Follows `path` into nested objects/arrays; undefined when anything is missing. */
function at(value: unknown, ...path: (string | number)[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof key === "number") {
      if (!Array.isArray(current)) return undefined;
      current = current[key];
    } else {
      if (!isRecord(current)) return undefined;
      current = current[key];
    }
  }
  return current;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function text(value: unknown, what: string): string {
  assert.equal(typeof value, "string", `${what} must be a string, got ${JSON.stringify(value)}`);
  return value as string;
}

interface Doc {
  /** Path relative to the repository root. */
  file: string;
  value: unknown;
}

interface K8sObject {
  file: string;
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string | undefined;
  value: Json;
}

function walk(dir: string): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...walk(path));
    else if (/\.ya?ml$/.test(entry.name)) files.push(path);
  }
  return files.sort();
}

function parseDocs(source: string, label: string): Doc[] {
  const docs: Doc[] = [];
  for (const doc of parseAllDocuments(source)) {
    assert.deepEqual(doc.errors.map((e) => e.message), [], `${label}: YAML errors`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) docs.push({ file: label, value });
  }
  return docs;
}

function loadDocs(path: string): Doc[] {
  return parseDocs(Deno.readTextFileSync(path), relative(ROOT, path));
}

const ALL_YAML = [...walk(MANIFESTS), ...walk(CLAB)];

function isKubernetesFile(path: string): boolean {
  const rel = relative(ROOT, path);
  return !rel.endsWith("kustomization.yaml") && !rel.startsWith("clab/kind/") &&
    !rel.endsWith(".clab.yaml");
}

function toObject(doc: Doc): K8sObject {
  const value = doc.value;
  assert.ok(isRecord(value), `${doc.file}: document is not a mapping`);
  const namespace = at(value, "metadata", "namespace");
  return {
    file: doc.file,
    apiVersion: text(value.apiVersion, `${doc.file}: apiVersion`),
    kind: text(value.kind, `${doc.file}: kind`),
    name: text(at(value, "metadata", "name"), `${doc.file}: metadata.name`),
    namespace: typeof namespace === "string" ? namespace : undefined,
    value,
  };
}

function objectsIn(dir: string): K8sObject[] {
  return walk(dir).filter(isKubernetesFile).flatMap(loadDocs).map(toObject);
}

function ofKind(objects: K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

function one(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && o.name === name);
  assert.equal(found.length, 1, `expected exactly one ${kind} ${name}, found ${found.length}`);
  return found[0]!;
}

/** Kubernetes' DNS-1123 subdomain (each dot-separated label alphanumeric at both ends). */
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function isSubdomain(name: string): boolean {
  return name.length <= 253 && SUBDOMAIN.test(name);
}

function siteObjects(site: string): K8sObject[] {
  return objectsIn(join(CLAB, "sites", site));
}

/** The embedded CNI config of a NetworkAttachmentDefinition, as JSON. */
function nadConfig(nad: K8sObject): Json {
  const raw = text(at(nad.value, "spec", "config"), `${nad.file}: ${nad.name} spec.config`);
  const config: unknown = JSON.parse(raw);
  assert.ok(isRecord(config), `${nad.file}: ${nad.name} spec.config is not a JSON object`);
  return config;
}

/** Every `ip -6 addr add <address>/<len> dev <if>` of a topology node's exec list. */
function execAddresses(node: unknown): string[] {
  return list(at(node, "exec")).flatMap((command) => {
    const match = typeof command === "string"
      ? /^ip -6 addr add ([0-9a-f:]+)\/\d+ dev \S+$/.exec(command)
      : null;
    return match?.[1] ? [match[1]] : [];
  });
}

function prefixesOverlap(a: IpPrefix, b: IpPrefix): boolean {
  if (a.family !== b.family) return false;
  const bits = BigInt(a.family === 4 ? 32 : 128);
  const shift = bits - BigInt(Math.min(a.length, b.length));
  return a.value >> shift === b.value >> shift;
}

/** LabelSelector semantics (matchLabels AND matchExpressions), as the plugin applies them. */
function selects(selector: unknown, labels: Record<string, string>): boolean {
  assert.ok(
    isRecord(selector),
    `providerSelector must be an object, got ${JSON.stringify(selector)}`,
  );
  const matchLabels = at(selector, "matchLabels");
  for (const [key, value] of Object.entries(isRecord(matchLabels) ? matchLabels : {})) {
    if (labels[key] !== value) return false;
  }
  for (const expression of list(at(selector, "matchExpressions"))) {
    const key = text(at(expression, "key"), "matchExpressions[].key");
    const values = list(at(expression, "values")).map((v) => String(v));
    const has = Object.hasOwn(labels, key);
    switch (at(expression, "operator")) {
      case "In":
        if (!has || !values.includes(labels[key]!)) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[key]!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        assert.fail(`unknown selector operator ${JSON.stringify(at(expression, "operator"))}`);
    }
  }
  return true;
}

function labelsOf(object: K8sObject): Record<string, string> {
  const labels = at(object.value, "metadata", "labels");
  return isRecord(labels)
    ? Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, String(v)]))
    : {};
}

/**
 * (Cluster)Role rules expanded to one entry per (group, resource), verbs
 * sorted, resourceNames (when a rule has them) sorted after a `@`.
 */
function expandRules(role: K8sObject): string[] {
  return list(at(role.value, "rules")).flatMap((rule) => {
    assert.ok(isRecord(rule), `${role.name}: rule is not an object`);
    const keys = Object.keys(rule).filter((k) => k !== "resourceNames").sort();
    assert.deepEqual(
      keys,
      ["apiGroups", "resources", "verbs"],
      `${role.name}: rules may only name apiGroups, resources, verbs and resourceNames (no URLs)`,
    );
    const verbs = list(rule.verbs).map(String).sort().join(",");
    const names = rule.resourceNames === undefined
      ? ""
      : ` @${list(rule.resourceNames).map(String).sort().join(",")}`;
    return list(rule.apiGroups).flatMap((group) =>
      list(rule.resources).map((resource) => `${group}/${resource}: ${verbs}${names}`)
    );
  }).sort();
}

function expectedRules(rules: readonly RbacRule[]): string[] {
  return rules.map((rule) =>
    `${rule.apiGroup}/${rule.resource}: ${[...rule.verbs].sort().join(",")}` +
    (rule.resourceNames ? ` @${[...rule.resourceNames].sort().join(",")}` : "")
  )
    .sort();
}

function agentCommand(): Command {
  const program = new Command("galactic");
  registerAgentCommand(program);
  const agent = program.commands.find((command) => command.name() === "agent");
  assert.ok(agent, "registerAgentCommand must add an `agent` subcommand");
  return agent;
}

function installCommand(): Command {
  const program = new Command("galactic");
  registerInstallCommand(program);
  const install = program.commands.find((command) => command.name() === "install");
  assert.ok(install, "registerInstallCommand must add an `install` subcommand");
  return install;
}

function hasKubectl(): boolean {
  try {
    return new Deno.Command("kubectl", {
      args: ["version", "--client"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync().success;
  } catch {
    return false;
  }
}

const MANIFEST_OBJECTS = objectsIn(MANIFESTS);
const DAEMONSET = one(MANIFEST_OBJECTS, "DaemonSet", "galactic");

// ------------------------------------------------------------------ tests ---

Deno.test("every YAML file under manifests/ and clab/ parses", () => {
  assert.ok(ALL_YAML.length >= 20, `expected the deployment files, found ${ALL_YAML.length}`);
  for (const path of ALL_YAML) {
    const docs = loadDocs(path);
    assert.ok(docs.length > 0, `${relative(ROOT, path)} holds no document`);
  }
});

Deno.test("every Kubernetes object has apiVersion, kind and a valid name and namespace", () => {
  const clusterScoped = new Set([
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "BGPProvider",
    "BGPInstance",
    "BGPPeer",
    "BGPVRFInstance",
    "CustomResourceDefinition",
  ]);
  const objects = [...MANIFEST_OBJECTS, ...objectsIn(join(CLAB, "sites"))];
  assert.ok(objects.length >= 20);
  for (const object of objects) {
    const where = `${object.file}: ${object.kind} ${object.name}`;
    assert.ok(object.apiVersion !== "" && object.kind !== "", where);
    assert.ok(isSubdomain(object.name), `${where}: name is not a lowercase RFC 1123 subdomain`);
    if (clusterScoped.has(object.kind)) {
      assert.equal(
        object.namespace,
        undefined,
        `${where}: cluster-scoped, must not set a namespace`,
      );
    } else {
      assert.ok(
        object.namespace !== undefined,
        `${where}: namespaced, must set metadata.namespace`,
      );
      assert.ok(
        DNS_LABEL.test(object.namespace),
        `${where}: invalid namespace ${object.namespace}`,
      );
    }
  }
  for (const kustomization of [MANIFESTS, ...SITES.map((s) => join(CLAB, "sites", s))]) {
    const [doc] = loadDocs(join(kustomization, "kustomization.yaml"));
    for (const resource of list(at(doc?.value, "resources"))) {
      const path = join(kustomization, text(resource, "kustomization resource"));
      assert.ok(
        (() => {
          try {
            Deno.statSync(path);
            return true;
          } catch {
            return false;
          }
        })(),
        `${relative(ROOT, kustomization)}/kustomization.yaml lists missing resource ${resource}`,
      );
    }
  }
});

Deno.test("ClusterRoles equal PLUGIN_RBAC and AGENT_RBAC exactly, bound to their ServiceAccounts", () => {
  const roles = ofKind(MANIFEST_OBJECTS, "ClusterRole");
  assert.deepEqual(roles.map((r) => r.name).sort(), ["galactic-agent", "galactic-cni"]);
  // Namespaced rules live in a Role of galactic's namespace, never in the ClusterRole.
  assert.deepEqual(ofKind(MANIFEST_OBJECTS, "Role").map((r) => r.name), ["galactic-agent"]);
  assert.ok(PLUGIN_RBAC.every((rule) => rule.namespace === undefined));
  assert.ok(AGENT_RBAC.every((rule) => [undefined, NAMESPACE].includes(rule.namespace)));
  assert.deepEqual(
    expandRules(one(MANIFEST_OBJECTS, "ClusterRole", "galactic-cni")),
    expectedRules(PLUGIN_RBAC),
  );
  assert.deepEqual(
    expandRules(one(MANIFEST_OBJECTS, "ClusterRole", "galactic-agent")),
    expectedRules(AGENT_RBAC.filter((rule) => rule.namespace === undefined)),
  );
  const agentRole = one(MANIFEST_OBJECTS, "Role", "galactic-agent");
  assert.equal(agentRole.namespace, NAMESPACE);
  assert.deepEqual(
    expandRules(agentRole),
    expectedRules(AGENT_RBAC.filter((rule) => rule.namespace === NAMESPACE)),
  );
  assert.deepEqual(expandRules(agentRole), ["/serviceaccounts/token: create @galactic-cni"]);
  const roleBinding = one(MANIFEST_OBJECTS, "RoleBinding", "galactic-agent");
  assert.equal(roleBinding.namespace, NAMESPACE);
  assert.deepEqual(at(roleBinding.value, "roleRef"), {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "Role",
    name: "galactic-agent",
  });
  assert.deepEqual(at(roleBinding.value, "subjects"), [
    { kind: "ServiceAccount", name: "galactic-agent", namespace: NAMESPACE },
  ]);
  // The agent can do everything the plugin can (it may act on its behalf), plus watch.
  for (const rule of PLUGIN_RBAC) {
    const agent = AGENT_RBAC.find((r) =>
      r.apiGroup === rule.apiGroup && r.resource === rule.resource
    );
    assert.ok(agent, `AGENT_RBAC lacks ${rule.apiGroup}/${rule.resource}`);
    for (const verb of [...rule.verbs, "list", "watch"]) {
      assert.ok(agent.verbs.includes(verb), `AGENT_RBAC lacks ${verb} on ${rule.resource}`);
    }
  }

  for (const name of ["galactic-cni", "galactic-agent"]) {
    const binding = one(MANIFEST_OBJECTS, "ClusterRoleBinding", name);
    assert.deepEqual(at(binding.value, "roleRef"), {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name,
    });
    assert.deepEqual(at(binding.value, "subjects"), [
      { kind: "ServiceAccount", name, namespace: NAMESPACE },
    ]);
    assert.equal(one(MANIFEST_OBJECTS, "ServiceAccount", name).namespace, NAMESPACE);
  }
  assert.equal(
    at(
      one(MANIFEST_OBJECTS, "ServiceAccount", "galactic-cni").value,
      "automountServiceAccountToken",
    ),
    false,
  );
  // No long-lived token: the plugin's are issued through TokenRequest by the agent.
  assert.deepEqual(ofKind(MANIFEST_OBJECTS, "Secret"), [], "no Secret (no legacy token)");
  assert.notEqual(
    at(DAEMONSET.value, "spec", "template", "spec", "automountServiceAccountToken"),
    false,
    "the installer and the agent authenticate with the pod's projected token",
  );
  assert.equal(
    at(DAEMONSET.value, "spec", "template", "spec", "serviceAccountName"),
    "galactic-agent",
  );
});

Deno.test("DaemonSet init container runs `install` with flags the CLI defines, into the plugin's host paths", () => {
  const pod = at(DAEMONSET.value, "spec", "template", "spec");
  assert.equal(at(pod, "hostNetwork"), true);
  assert.ok(
    list(at(pod, "tolerations")).some((t) =>
      isRecord(t) && t.operator === "Exists" && t.key === undefined
    ),
    "DaemonSet must tolerate every taint",
  );
  const volumes = new Map(
    list(at(pod, "volumes")).map((v) => [text(at(v, "name"), "volume name"), v]),
  );
  const inits = list(at(pod, "initContainers"));
  assert.equal(inits.length, 1);
  const init = inits[0];

  // The command line, checked against the real option definitions.
  const argv = list(at(init, "command")).concat(list(at(init, "args"))).map((a) =>
    text(a, "argument")
  );
  assert.equal(argv[0], `/usr/local/bin/${PLUGIN_BINARY_NAME}`);
  assert.equal(argv[1], "install");
  const options = new Map<string, Option>(installCommand().options.map((o) => [o.long ?? "", o]));
  const given = new Map<string, string[]>();
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!;
    assert.ok(arg.startsWith("--"), `unexpected positional argument ${arg} in the install command`);
    const [flag, inline] = arg.split(/=(.*)/s, 2) as [string, string | undefined];
    const option = options.get(flag);
    assert.ok(option, `install has no flag ${flag}; defined: ${[...options.keys()].join(" ")}`);
    let value = inline;
    if ((option.required || option.optional) && value === undefined) {
      value = argv[++i];
      assert.ok(value !== undefined && !value.startsWith("--"), `${flag} needs a value`);
    }
    given.set(flag, [...(given.get(flag) ?? []), value ?? "true"]);
  }
  const env = new Map(list(at(init, "env")).map((e) => [text(at(e, "name"), "env name"), e]));
  for (const option of options.values()) {
    if (!option.mandatory || given.has(option.long ?? "")) continue;
    assert.ok(
      option.envVar && env.has(option.envVar),
      `mandatory ${option.long} is neither passed nor in env`,
    );
  }
  assert.equal(at(env.get("NODE_NAME"), "valueFrom", "fieldRef", "fieldPath"), "spec.nodeName");

  /** The host (or secret) behind a path inside the init container. */
  function backing(path: string): { hostPath?: string; secret?: string } {
    const mounts = list(at(init, "volumeMounts"))
      .filter((m) => {
        const mountPath = text(at(m, "mountPath"), "mountPath");
        return path === mountPath || path.startsWith(mountPath + "/");
      })
      .sort((a, b) => String(at(b, "mountPath")).length - String(at(a, "mountPath")).length);
    const mount = mounts[0];
    assert.ok(mount, `no volume mounted at ${path}`);
    const volume = volumes.get(text(at(mount, "name"), "mount name"));
    const rest = path.slice(String(at(mount, "mountPath")).length);
    const hostPath = at(volume, "hostPath", "path");
    if (typeof hostPath === "string") return { hostPath: hostPath + rest };
    const secret = at(volume, "secret", "secretName");
    return typeof secret === "string" ? { secret } : {};
  }
  assert.deepEqual(backing(given.get("--cni-bin-dir")?.[0] ?? DEFAULT_CNI_BIN_DIR), {
    hostPath: DEFAULT_CNI_BIN_DIR,
  });
  assert.deepEqual(backing(given.get("--config-dir")?.[0] ?? DEFAULT_CONFIG_DIR), {
    hostPath: DEFAULT_CONFIG_DIR,
  });
  // The installer authenticates as the pod: the kubelet's projected token at the default path.
  assert.equal(given.get("--service-account-dir"), undefined);
  assert.equal(given.get("--kubeconfig"), undefined);
  assert.deepEqual(
    list(at(init, "volumeMounts")).filter((m) =>
      String(at(m, "mountPath")).startsWith("/var/run/secrets")
    ),
    [],
    "nothing may shadow the projected service account token",
  );
  assert.deepEqual(given.get("--delegate"), ["/usr/lib/cni/host-device", "/usr/lib/cni/static"]);

  // The agent: main container, socket on the host where the plugin expects it.
  const containers = list(at(pod, "containers"));
  assert.equal(containers.length, 1);
  const agent = containers[0];
  const agentArgv = list(at(agent, "command")).concat(list(at(agent, "args")));
  assert.deepEqual(agentArgv, [
    `/usr/local/bin/${PLUGIN_BINARY_NAME}`,
    "agent",
    "--socket",
    DEFAULTS.agentSocket,
    "--plugin-kubeconfig",
    "/host/etc/cni/net.d/galactic.d/kubeconfig",
  ]);
  const agentFlags = agentCommand().options.map((o) => o.long);
  assert.ok(agentFlags.includes("--plugin-kubeconfig"));
  // The agent rewrites the very file the installer wrote and the plugin reads.
  const agentMount = list(at(agent, "volumeMounts")).find((m) =>
    at(m, "mountPath") === "/host/etc/cni/net.d/galactic.d"
  );
  assert.ok(agentMount, "the agent must mount the plugin's config dir");
  assert.notEqual(at(agentMount, "readOnly"), true);
  assert.equal(
    at(volumes.get(String(at(agentMount, "name"))), "hostPath", "path"),
    DEFAULT_CONFIG_DIR,
  );
  assert.equal(at(agent, "env", 0, "name"), "NODE_NAME");
  assert.equal(at(agent, "env", 0, "valueFrom", "fieldRef", "fieldPath"), "spec.nodeName");
  const socketDir = dirname(DEFAULTS.agentSocket);
  const socketMount = list(at(agent, "volumeMounts")).find((m) => at(m, "mountPath") === socketDir);
  assert.ok(socketMount, `agent must mount ${socketDir}`);
  assert.equal(at(volumes.get(String(at(socketMount, "name"))), "hostPath", "path"), socketDir);

  // Hardening: the runtime's default seccomp profile; of the host, only the plugin's own config
  // dir, the CNI bin dir it installs into, the agent's socket dir, the state dir the agent's
  // reclaim updates and the xtables lock are writable.
  assert.equal(at(pod, "securityContext", "seccompProfile", "type"), "RuntimeDefault");
  const writableHostPaths = [
    ...new Set(
      [init, agent].flatMap((c) => list(at(c, "volumeMounts")))
        .filter((m) => at(m, "readOnly") !== true)
        .map((m) => at(volumes.get(String(at(m, "name"))), "hostPath", "path"))
        .filter((path) => typeof path === "string"),
    ),
  ].sort();
  assert.deepEqual(
    writableHostPaths,
    [DEFAULT_CNI_BIN_DIR, DEFAULT_CONFIG_DIR, socketDir, DEFAULTS.stateDir, "/run/xtables.lock"]
      .sort(),
  );

  for (const container of [init, agent]) {
    for (const kind of ["requests", "limits"]) {
      for (const resource of ["cpu", "memory"]) {
        assert.ok(
          at(container, "resources", kind, resource),
          `${at(container, "name")} lacks ${kind}.${resource}`,
        );
      }
    }
  }
});

Deno.test("DaemonSet lets the agent's reclaim act: state dir, netns dir, delegates, NET_ADMIN", () => {
  const pod = at(DAEMONSET.value, "spec", "template", "spec");
  const agent = list(at(pod, "containers"))[0];
  const volumes = new Map(list(at(pod, "volumes")).map((v) => [String(at(v, "name")), v]));
  const mounts = new Map(
    list(at(agent, "volumeMounts")).map((m) => [String(at(m, "mountPath")), m]),
  );
  function hostPathAt(mountPath: string): unknown {
    const mount = mounts.get(mountPath);
    assert.ok(mount, `agent must mount ${mountPath}`);
    return at(volumes.get(String(at(mount, "name"))), "hostPath", "path");
  }
  // The records and locks the plugin uses, at the path the agent's --state-dir defaults to.
  assert.equal(hostPathAt(DEFAULTS.stateDir), DEFAULTS.stateDir);
  assert.notEqual(at(mounts.get(DEFAULTS.stateDir), "readOnly"), true);
  // A sandbox's netns bind mount: without HostToContainer, namespaces created after the
  // agent started would be invisible and their attachments taken for gone.
  assert.equal(hostPathAt("/run/netns"), "/run/netns");
  assert.equal(at(mounts.get("/run/netns"), "mountPropagation"), "HostToContainer");
  assert.equal(at(mounts.get("/run/netns"), "readOnly"), true);
  // host-device's DEL, where --cni-path defaults.
  assert.equal(hostPathAt(DEFAULT_CNI_BIN_DIR), DEFAULT_CNI_BIN_DIR);
  assert.equal(at(mounts.get(DEFAULT_CNI_BIN_DIR), "readOnly"), true);
  assert.equal(hostPathAt("/run/xtables.lock"), "/run/xtables.lock");
  assert.deepEqual(at(agent, "securityContext", "capabilities"), {
    drop: ["ALL"],
    add: ["NET_ADMIN"],
  });
  // The commands the reclaim runs are in the image.
  const containerfile = Deno.readTextFileSync(join(ROOT, "manifests", "Containerfile"));
  const runtimeStage = containerfile.slice(containerfile.lastIndexOf("\nFROM "));
  for (const pkg of ["iproute2", "iptables", "containernetworking-plugins"]) {
    assert.match(runtimeStage, new RegExp(`apt-get install [^\\n]*\\b${pkg}\\b`), pkg);
  }
});

Deno.test("DaemonSet probes the agent's /readyz and /livez where the agent serves them", () => {
  const agent = at(DAEMONSET.value, "spec", "template", "spec", "containers", 0);
  const argv = list(at(agent, "command")).map((a) => text(a, "argument"));
  const flag = argv.indexOf("--health-port");
  const port = flag >= 0 ? Number(argv[flag + 1]) : DEFAULT_HEALTH_PORT;
  for (const [probe, path] of [["readinessProbe", "/readyz"], ["livenessProbe", "/livez"]]) {
    assert.deepEqual(
      at(agent, probe!, "httpGet"),
      // The agent listens on 127.0.0.1 only; the pod shares the host network.
      { host: "127.0.0.1", port, path },
      `${probe} of the agent`,
    );
  }
  assert.equal(at(DAEMONSET.value, "spec", "template", "spec", "hostNetwork"), true);
  // A restart must not come before a healthy loop could have stepped (a probe timeout is not "stuck").
  const period = Number(at(agent, "livenessProbe", "periodSeconds") ?? 10);
  const failures = Number(at(agent, "livenessProbe", "failureThreshold") ?? 3);
  assert.ok(period * failures >= 30, "liveness tolerates at least 30 s of failed probes");
});

Deno.test("every NetworkAttachmentDefinition's config passes parseNetworkConfig", () => {
  const nads = [
    ...ofKind(MANIFEST_OBJECTS, "NetworkAttachmentDefinition"),
    ...SITES.flatMap((site) => ofKind(siteObjects(site), "NetworkAttachmentDefinition")),
  ];
  assert.ok(nads.length >= 1 + 2 * SITES.length);
  for (const nad of nads) {
    assert.equal(nad.apiVersion, "k8s.cni.cncf.io/v1", `${nad.file}: ${nad.name}`);
    const config = nadConfig(nad);
    assert.equal(config.type, "galactic", `${nad.file}: ${nad.name} type`);
    assert.equal(config.name, nad.name, `${nad.file}: config name should match the NAD name`);
    const parsed = parseNetworkConfig(config);
    assert.equal(parsed.ipam?.type, "static", `${nad.file}: ${nad.name} uses static IPAM`);
  }
});

Deno.test("clab: SRv6 locators differ per site and are routed to that site's worker", () => {
  const topology = loadDocs(join(CLAB, "galactic.clab.yaml"))[0]?.value;
  const locators = new Map<string, IpPrefix>();
  for (const site of SITES) {
    const configs = ofKind(siteObjects(site), "NetworkAttachmentDefinition").map(nadConfig);
    assert.ok(configs.length >= 2, `${site}: expected NADs for at least two VPCs`);
    const distinct = [...new Set(configs.map((c) => String(c.srv6_locator)))];
    assert.equal(
      distinct.length,
      1,
      `${site}: all NADs of the site's worker share one locator, got ${distinct}`,
    );
    const locator = parsePrefix(distinct[0]!);
    assert.ok(locator, `${site}: bad locator ${distinct[0]}`);
    for (const [other, prefix] of locators) {
      assert.ok(
        !prefixesOverlap(prefix, locator),
        `${site} and ${other} have overlapping locators`,
      );
    }
    locators.set(site, locator);

    const worker = at(topology, "topology", "nodes", `${site}-worker`);
    const [workerAddress] = execAddresses(worker);
    assert.ok(workerAddress, `${site}-worker has no underlay address in the topology`);
    const frr = Deno.readTextFileSync(join(CLAB, "frr", `tr-${site}.conf`));
    assert.ok(
      frr.includes(`ipv6 route ${distinct[0]} ${workerAddress}`),
      `tr-${site} must route ${distinct[0]} to ${workerAddress}`,
    );
  }
});

Deno.test("clab: VPCs hold at least two per site, attachments and route targets never collide", () => {
  const attachments = new Set<string>();
  const routeTargets = new Map<bigint, string>();
  for (const site of SITES) {
    const objects = siteObjects(site);
    const nads = ofKind(objects, "NetworkAttachmentDefinition");
    const vpcs = new Set(nads.map((nad) => String(nadConfig(nad).vpc)));
    assert.ok(vpcs.size >= 2, `${site}: tenant pods in at least two VPCs, got ${[...vpcs]}`);
    for (const nad of nads) {
      const config = nadConfig(nad);
      const key = `${config.vpc}/${config.vpcattachment}`;
      assert.ok(!attachments.has(key), `attachment ${key} is used twice`);
      attachments.add(key);
      const vpc = parseVpc(String(config.vpc));
      const low32 = vpc.value & 0xffffffffn;
      const holder = routeTargets.get(low32);
      assert.ok(
        holder === undefined || holder === vpc.text,
        `VPCs ${holder} and ${vpc.text} share a route target`,
      );
      routeTargets.set(low32, vpc.text);
    }
    // Every tenant pod uses a NAD of its namespace and is pinned to the worker whose locator it carries.
    const pods = ofKind(objects, "Pod");
    assert.equal(pods.length, nads.length, `${site}: one tenant pod per NAD`);
    for (const pod of pods) {
      const network = at(pod.value, "metadata", "annotations", "k8s.v1.cni.cncf.io/networks");
      assert.ok(
        nads.some((nad) => nad.name === network && nad.namespace === pod.namespace),
        `${site}: pod ${pod.name} references missing NAD ${network}`,
      );
      assert.equal(
        at(pod.value, "spec", "nodeSelector", "kubernetes.io/hostname"),
        `${site}-worker`,
      );
    }
  }
});

Deno.test("clab: workers' BGPInstances are Auto without routerID; the reflector's is Manual with routerID and clusterID", () => {
  let reflectors = 0;
  for (const site of SITES) {
    const objects = siteObjects(site);
    const instances = ofKind(objects, "BGPInstance");
    assert.ok(instances.length >= 1, `${site}: no BGPInstance`);
    for (const instance of instances) {
      const spec = at(instance.value, "spec");
      const where = `${site}: BGPInstance ${instance.name}`;
      assert.equal(instance.apiVersion, "bgp.miloapis.com/v1alpha1", where);
      assert.deepEqual(at(spec, "addressFamilies"), [{ afi: "L2VPN", safi: "EVPN" }], where);
      const asn = at(spec, "asNumber");
      // RD/RT are ASN:NN Type 0 values: a 2-byte ASN.
      assert.ok(
        Number.isInteger(asn) && (asn as number) >= 1 && (asn as number) <= 65535,
        `${where}: asNumber ${asn}`,
      );
      assert.ok(Number.isInteger(at(spec, "listenPort")), `${where}: listenPort`);
      assert.ok(isRecord(at(spec, "providerSelector")), `${where}: providerSelector`);
      if (at(spec, "routeReflector") !== undefined) {
        reflectors++;
        assert.equal(site, "iad", `${where}: the route reflector lives in iad`);
        assert.equal(at(spec, "routerIDSource"), "Manual", where);
        const routerId = parseIp(text(at(spec, "routerID"), `${where} routerID`));
        assert.equal(routerId?.family, 4, `${where}: routerID must be a dotted-quad`);
        assert.ok(
          parseIp(text(at(spec, "routeReflector", "clusterID"), `${where} clusterID`)),
          where,
        );
      } else {
        assert.equal(at(spec, "routerIDSource"), "Auto", where);
        assert.equal(at(spec, "routerID"), undefined, `${where}: Auto must not set routerID`);
      }
    }
    // The plugin's lookup: every provider matches exactly one instance (zero or two is an ADD error).
    const providers = ofKind(objects, "BGPProvider");
    assert.ok(
      providers.some((p) => labelsOf(p)["bgp.miloapis.com/node"] === `${site}-worker`),
      `${site}: no BGPProvider labelled with node ${site}-worker`,
    );
    for (const instance of instances) {
      assert.ok(
        providers.some((p) => selects(at(instance.value, "spec", "providerSelector"), labelsOf(p))),
        `${site}: BGPInstance ${instance.name} selects no BGPProvider`,
      );
    }
    for (const provider of providers) {
      assert.equal(provider.apiVersion, "providers.bgp.miloapis.com/v1alpha1");
      const matching = instances.filter((i) =>
        selects(at(i.value, "spec", "providerSelector"), labelsOf(provider))
      );
      assert.equal(
        matching.length,
        1,
        `${site}: provider ${provider.name} matches ${matching.map((i) => i.name)}`,
      );
      if (labelsOf(provider)["bgp.miloapis.com/node"] === `${site}-worker`) {
        assert.equal(at(matching[0]?.value, "spec", "routerIDSource"), "Auto");
      }
    }
  }
  assert.equal(reflectors, 1, "exactly one route reflector BGPInstance");
});

Deno.test("every cosmos object under manifests/ and clab/ is one a real API server with the cosmos CRDs accepts", () => {
  const groups = new Set(COSMOS_CRDS.map((c) => c.group));
  const objects = [...objectsIn(MANIFESTS), ...SITES.flatMap(siteObjects)];
  const cosmos = objects.filter((o) => groups.has(o.apiVersion.split("/")[0]!));
  assert.ok(cosmos.length >= 14, `only ${cosmos.length} cosmos objects found`);
  for (const object of cosmos) {
    const where = `${relative(ROOT, object.file)}: ${object.kind} ${object.name}`;
    const [group, version] = object.apiVersion.split("/");
    const crd = COSMOS_CRDS.find((c) => c.group === group && c.names.kind === object.kind);
    assert.ok(crd, `${where}: no cosmos CRD defines ${object.kind} in ${group}`);
    const served = servedVersion(crd, version!);
    assert.ok(served, `${where}: ${object.apiVersion} is not a served version`);
    const { object: stored, errors } = admit(crd, served, object.value);
    assert.deepEqual(describeErrors(errors), [], `${where} would be refused`);
    // Nothing the server would prune: what the file says is what gets stored.
    const pruned = (value: unknown, kept: unknown, path: string): void => {
      if (!isRecord(value)) return;
      for (const key of Object.keys(value)) {
        assert.ok(
          isRecord(kept) && key in kept,
          `${where}: ${path}${key} is not a field of the CRD`,
        );
        pruned(value[key], (kept as Json)[key], `${path}${key}.`);
      }
    };
    pruned(object.value, stored, "");
  }
});

Deno.test("clab: BGPPeers reference their site's instances and providers and the addresses the topology assigns", () => {
  const topology = loadDocs(join(CLAB, "galactic.clab.yaml"))[0]?.value;
  const nodes = at(topology, "topology", "nodes");
  const reflectorAddress = execAddresses(at(nodes, "iad-control-plane"))[0];
  assert.ok(reflectorAddress, "iad-control-plane (route reflector) needs an underlay address");
  const workerAddresses = SITES.map((site) => execAddresses(at(nodes, `${site}-worker`))[0]);
  const reflectorPeers: string[] = [];
  for (const site of SITES) {
    const objects = siteObjects(site);
    const instances = new Map(ofKind(objects, "BGPInstance").map((i) => [i.name, i]));
    const providers = new Map(ofKind(objects, "BGPProvider").map((p) => [p.name, p]));
    for (const peer of ofKind(objects, "BGPPeer")) {
      const where = `${site}: BGPPeer ${peer.name}`;
      assert.equal(peer.apiVersion, "bgp.miloapis.com/v1alpha1", where);
      const instance = instances.get(
        text(at(peer.value, "spec", "instanceRef"), `${where} instanceRef`),
      );
      assert.ok(instance, `${where}: instanceRef names no BGPInstance of ${site}`);
      const provider = providers.get(
        text(at(peer.value, "spec", "providerRef"), `${where} providerRef`),
      );
      assert.ok(provider, `${where}: providerRef names no BGPProvider of ${site}`);
      assert.ok(
        selects(at(instance.value, "spec", "providerSelector"), labelsOf(provider)),
        `${where}: its provider is not one of its instance's`,
      );
      const address = text(at(peer.value, "spec", "address"), `${where} address`);
      assert.ok(parseIp(address), `${where}: address ${address}`);
      assert.equal(
        at(peer.value, "spec", "asNumber"),
        at(instance.value, "spec", "asNumber"),
        `${where}: iBGP`,
      );
      const reflector = at(instance.value, "spec", "routeReflector") !== undefined;
      assert.equal(
        at(peer.value, "spec", "routeReflectorClient") === true,
        reflector,
        `${where}: the reflector's peers, and only they, are route-reflector clients`,
      );
      if (reflector) reflectorPeers.push(address);
      else {assert.equal(
          address,
          reflectorAddress,
          `${where}: workers peer with the route reflector`,
        );}
    }
  }
  assert.deepEqual(
    reflectorPeers.sort(),
    [...workerAddresses].sort(),
    "the reflector peers with every worker",
  );
});

Deno.test("clab: topology wires each site's kind cluster to its transit router", () => {
  const topology = loadDocs(join(CLAB, "galactic.clab.yaml"))[0]?.value;
  const nodes = at(topology, "topology", "nodes");
  assert.ok(isRecord(nodes));
  const kinds = at(topology, "topology", "kinds");
  const imageOf = (kind: string): unknown => at(kinds, kind, "image");
  assert.ok(imageOf("k8s-kind"), "k8s-kind needs an image");
  for (const site of SITES) {
    assert.equal(at(nodes, site, "kind"), "k8s-kind", `${site} is a kind cluster`);
    const kindConfigPath = join(
      CLAB,
      text(at(nodes, site, "startup-config"), `${site} startup-config`),
    );
    const kindConfig = loadDocs(kindConfigPath)[0]?.value;
    assert.equal(at(kindConfig, "apiVersion"), "kind.x-k8s.io/v1alpha4");
    assert.equal(at(kindConfig, "kind"), "Cluster");
    assert.equal(at(kindConfig, "name"), site);
    assert.deepEqual(list(at(kindConfig, "nodes")).map((n) => at(n, "role")), [
      "control-plane",
      "worker",
    ]);
    for (const role of ["control-plane", "worker"]) {
      assert.equal(at(nodes, `${site}-${role}`, "kind"), "ext-container", `${site}-${role}`);
    }
    assert.equal(at(nodes, `tr-${site}`, "kind"), "linux");
    for (const bind of list(at(nodes, `tr-${site}`, "binds"))) {
      const file = text(bind, "bind").split(":")[0]!;
      Deno.statSync(join(CLAB, file));
    }
  }
  const used = new Set<string>();
  for (const link of list(at(topology, "topology", "links"))) {
    for (const endpoint of list(at(link, "endpoints"))) {
      const [node, iface] = text(endpoint, "link endpoint").split(":");
      assert.ok(node && isRecord(nodes[node]), `link endpoint ${endpoint} names an unknown node`);
      assert.ok(iface && iface !== "eth0", `link endpoint ${endpoint} must use eth1+`);
      assert.ok(!used.has(String(endpoint)), `interface ${endpoint} is linked twice`);
      used.add(String(endpoint));
    }
  }
  for (const site of SITES) {
    assert.ok(used.has(`${site}-worker:eth1`), `${site}-worker:eth1 must be linked`);
  }
  assert.ok(used.has("iad-control-plane:eth1"), "the route reflector node must be linked");
});

Deno.test("docs/deployment.md names every manifest file and every install flag", () => {
  const docs = Deno.readTextFileSync(join(ROOT, "docs", "deployment.md"));
  for (const entry of Deno.readDirSync(MANIFESTS)) {
    assert.ok(
      docs.includes(`manifests/${entry.name}`),
      `docs/deployment.md does not mention manifests/${entry.name}`,
    );
  }
  for (const option of installCommand().options) {
    assert.ok(
      docs.includes(option.long ?? "?"),
      `docs/deployment.md does not document ${option.long}`,
    );
  }
});

const KUBECTL = hasKubectl();

for (const target of ["manifests", ...SITES.map((site) => `clab/sites/${site}`)]) {
  Deno.test({
    name: `kubectl kustomize renders ${target}`,
    ignore: !KUBECTL,
    fn: async () => {
      const output = await new Deno.Command("kubectl", {
        args: ["kustomize", join(ROOT, target)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.ok(output.success, `kubectl kustomize ${target} failed: ${stderr}`);
      const objects = parseDocs(new TextDecoder().decode(output.stdout), `kustomize ${target}`).map(
        toObject,
      );
      const identities = objects.map((o) =>
        `${o.apiVersion.split("/")[0]}/${o.kind}/${o.namespace ?? ""}/${o.name}`
      );
      assert.equal(new Set(identities).size, identities.length, `duplicate objects in ${target}`);
      for (const object of objects) {
        assert.ok(isSubdomain(object.name), `${target}: ${object.name}`);
      }
      for (
        const [kind, name] of [
          ["DaemonSet", "galactic"],
          ["ClusterRole", "galactic-cni"],
          [
            "ClusterRole",
            "galactic-agent",
          ],
          ["Role", "galactic-agent"],
          ["RoleBinding", "galactic-agent"],
        ]
      ) {
        one(objects, kind!, name!);
      }
      if (target.startsWith("clab/")) {
        for (
          const kind of [
            "BGPProvider",
            "BGPInstance",
            "BGPPeer",
            "NetworkAttachmentDefinition",
            "Pod",
          ]
        ) {
          assert.ok(ofKind(objects, kind).length > 0, `${target} renders no ${kind}`);
        }
      }
    },
  });
}
