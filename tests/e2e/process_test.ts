/**
 * Process-level checks of `bin/galactic`: executed like a CNI runtime does
 * (env + stdin, nothing else), stdout must hold exactly one JSON document;
 * and the operator CLI when `CNI_COMMAND` is not set.
 *
 * Only invocations that fail before touching the host (or VERSION) are run
 * here: nothing in this file needs root, iproute2 or a cluster.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { PLUGIN_VERSION } from "../../lib/version.ts";
import { denoDir } from "../support/fake_host/mod.ts";

const BIN = fileURLToPath(new URL("../../bin/galactic", import.meta.url));
const SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/galactic with a clean environment (PATH, HOME and the Deno cache only, plus `env`). */
async function galactic(
  args: string[],
  env: Record<string, string>,
  stdin?: string,
): Promise<Outcome> {
  const base: Record<string, string> = { DENO_DIR: denoDir() };
  for (const name of ["PATH", "HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) base[name] = value;
  }
  const child = new Deno.Command(BIN, {
    args,
    clearEnv: true,
    env: { ...base, ...env },
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const output = await child.output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** stdout, parsed as exactly one JSON object and nothing else. */
function oneDocument(outcome: Outcome): Record<string, unknown> {
  let document: unknown;
  try {
    document = JSON.parse(outcome.stdout);
  } catch (error) {
    assert.fail(
      `stdout is not exactly one JSON document (${
        (error as Error).message
      }):\n${outcome.stdout}\n--- stderr:\n${outcome.stderr}`,
    );
  }
  assert.ok(
    typeof document === "object" && document !== null && !Array.isArray(document),
    outcome.stdout,
  );
  // No banner, warning or progress line around the document.
  assert.ok(!/warning|download|deno/i.test(outcome.stdout.replace(/"[^"]*"/g, "")), outcome.stdout);
  return document as Record<string, unknown>;
}

function assertCniError(
  outcome: Outcome,
  code: number,
  mentions: string[] = [],
): Record<string, unknown> {
  assert.notEqual(outcome.code, 0, `exit code; stderr:\n${outcome.stderr}`);
  const document = oneDocument(outcome);
  assert.equal(document.code, code, JSON.stringify(document));
  assert.equal(typeof document.msg, "string");
  assert.ok(SUPPORTED.includes(document.cniVersion as string), JSON.stringify(document));
  for (const key of Object.keys(document)) {
    assert.ok(["cniVersion", "code", "msg", "details"].includes(key), `unexpected key ${key}`);
  }
  for (const text of mentions) {
    assert.ok(
      (document.msg as string).includes(text),
      `${JSON.stringify(document.msg)} mentions ${text}`,
    );
  }
  return document;
}

const CNI_ENV = {
  CNI_CONTAINERID: "3f1c0a9e5b7d",
  CNI_NETNS: "/var/run/netns/does-not-exist",
  CNI_IFNAME: "net1",
  CNI_PATH: "/nonexistent/cni/bin",
  CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
};

const CONFIG = {
  cniVersion: "1.0.0",
  name: "tenant-a",
  type: "galactic",
  vpc: "jU",
  vpcattachment: "G",
  srv6_locator: "fc00:0:1::/48",
};

// ---------------------------------------------------------------------------
// CNI mode

Deno.test("CNI_COMMAND=VERSION </dev/null prints only the version document, exit 0", async () => {
  const outcome = await galactic([], { CNI_COMMAND: "VERSION" });
  assert.equal(outcome.code, 0, outcome.stderr);
  assert.deepEqual(oneDocument(outcome), { cniVersion: "1.1.0", supportedVersions: SUPPORTED });
});

Deno.test("CNI_COMMAND=VERSION answers in the requested cniVersion", async () => {
  const outcome = await galactic([], { CNI_COMMAND: "VERSION" }, '{"cniVersion":"0.4.0"}');
  assert.equal(outcome.code, 0, outcome.stderr);
  assert.deepEqual(oneDocument(outcome), { cniVersion: "0.4.0", supportedVersions: SUPPORTED });
});

Deno.test("CNI errors: exactly one error document and a non-zero exit", async (t) => {
  const cases: {
    label: string;
    env: Record<string, string>;
    stdin: string;
    code: number;
    mentions: string[];
  }[] = [
    {
      label: "malformed JSON → 6",
      env: { CNI_COMMAND: "ADD", ...CNI_ENV },
      stdin: '{"cniVersion": "1.0.0", ',
      code: 6,
      mentions: [],
    },
    {
      label: "stdin not an object → 6",
      env: { CNI_COMMAND: "ADD", ...CNI_ENV },
      stdin: "[]",
      code: 6,
      mentions: [],
    },
    {
      label: "a configuration over 1 MiB → 7, unread beyond the bound",
      env: { CNI_COMMAND: "ADD", ...CNI_ENV },
      stdin: JSON.stringify({ ...CONFIG, padding: "x".repeat(1024 * 1024) }),
      code: 7,
      mentions: ["stdin", "larger than 1048576 bytes"],
    },
    {
      label: "invalid vpc → 7 naming it",
      env: { CNI_COMMAND: "ADD", ...CNI_ENV },
      stdin: JSON.stringify({ ...CONFIG, vpc: "zzzzzzzzz" }),
      code: 7,
      mentions: ["vpc", "zzzzzzzzz"],
    },
    {
      label: "invalid srv6_locator → 7 naming it",
      env: { CNI_COMMAND: "ADD", ...CNI_ENV },
      stdin: JSON.stringify({ ...CONFIG, srv6_locator: "10.0.0.0/8" }),
      code: 7,
      mentions: ["srv6_locator", "10.0.0.0/8"],
    },
    {
      label: "invalid mtu on DEL → 7 naming it",
      env: { CNI_COMMAND: "DEL", ...CNI_ENV },
      stdin: JSON.stringify({ ...CONFIG, mtu: 70000 }),
      code: 7,
      mentions: ["mtu", "70000"],
    },
    {
      label: "ADD without CNI_CONTAINERID → 4",
      env: { CNI_COMMAND: "ADD", ...CNI_ENV, CNI_CONTAINERID: "" },
      stdin: JSON.stringify(CONFIG),
      code: 4,
      mentions: ["CNI_CONTAINERID"],
    },
    {
      label: "unknown CNI_COMMAND → 4",
      env: { CNI_COMMAND: "FROB", ...CNI_ENV },
      stdin: JSON.stringify(CONFIG),
      code: 4,
      mentions: ["CNI_COMMAND"],
    },
    {
      label: "CHECK with cniVersion 0.3.1 → 1",
      env: { CNI_COMMAND: "CHECK", ...CNI_ENV },
      stdin: JSON.stringify({ ...CONFIG, cniVersion: "0.3.1" }),
      code: 1,
      mentions: ["CHECK"],
    },
    {
      label: "unsupported cniVersion → 1",
      env: { CNI_COMMAND: "ADD", ...CNI_ENV },
      stdin: JSON.stringify({ ...CONFIG, cniVersion: "9.9.9" }),
      code: 1,
      mentions: ["9.9.9"],
    },
  ];
  for (const c of cases) {
    await t.step(c.label, async () => {
      const env = Object.fromEntries(Object.entries(c.env).filter(([, v]) => v !== ""));
      assertCniError(await galactic([], env, c.stdin), c.code, c.mentions);
    });
  }
});

Deno.test("CNI error for a 0.4.0 configuration carries cniVersion 0.4.0", async () => {
  const outcome = await galactic(
    [],
    { CNI_COMMAND: "ADD", ...CNI_ENV },
    JSON.stringify({ ...CONFIG, cniVersion: "0.4.0", name: "bad name" }),
  );
  const document = assertCniError(outcome, 7, ["name"]);
  assert.equal(document.cniVersion, "0.4.0");
});

// ---------------------------------------------------------------------------
// CLI mode (no CNI_COMMAND)

Deno.test("galactic --help exits 0 and lists the commands", async () => {
  const outcome = await galactic(["--help"], {});
  assert.equal(outcome.code, 0, outcome.stderr);
  const text = outcome.stdout + outcome.stderr;
  for (const command of ["version", "explain", "state", "status", "install", "uninstall"]) {
    assert.match(text, new RegExp(`^\\s+${command}\\b`, "m"), `help lists ${command}:\n${text}`);
  }
});

Deno.test("galactic --version and version --json: version, build commit, Deno and CNI versions", async () => {
  const flag = await galactic(["--version"], {});
  assert.equal(flag.code, 0, flag.stderr);
  assert.match(flag.stdout, new RegExp(`^galactic ${PLUGIN_VERSION.replaceAll(".", "\\.")}$`, "m"));
  assert.match(flag.stdout, /^commit\s+([0-9a-f]{40}|unknown)$/m);
  assert.match(flag.stdout, /^deno\s+\d+\.\d+\.\d+/m);

  const json = await galactic(["version", "--json"], {});
  assert.equal(json.code, 0, json.stderr);
  const document = oneDocument(json);
  assert.deepEqual(Object.keys(document).sort(), [
    "cniVersions",
    "commit",
    "deno",
    "typescript",
    "v8",
    "version",
  ]);
  assert.equal(document.version, PLUGIN_VERSION);
  assert.deepEqual(document.cniVersions, SUPPORTED);
  // From a checkout the commit is the checkout's HEAD.
  const head = new Deno.Command("git", { args: ["rev-parse", "HEAD"], stdout: "piped" })
    .outputSync();
  if (head.success) assert.equal(document.commit, new TextDecoder().decode(head.stdout).trim());
});

Deno.test("galactic explain --json derives the SPEC §4 values under stable keys", async () => {
  const outcome = await galactic(
    [
      "explain",
      "--vpc",
      "jU",
      "--attachment",
      "G",
      "--locator",
      "fc00:0:1::/48",
      "--asn",
      "65000",
      "--node",
      "node-a",
      "--json",
    ],
    {},
  );
  assert.equal(outcome.code, 0, outcome.stderr);
  const document = oneDocument(outcome);
  // jU = 45*62 + 30 = 2820; SID: locator's first 64 bits, then (2820 << 16) | 16.
  assert.deepEqual(document, {
    vpc: { text: "0000000jU", value: 2820, hex: "b04" },
    routeNumber: 2820,
    attachment: { text: "00G", value: 16, hex: "10" },
    interfaces: { vrf: "G0000000jU00GV", host: "G0000000jU00GH", guest: "G0000000jU00GG" },
    srv6Endpoint: "fc00:0:1::b04:10/128",
    routeDistinguisher: "65000:2820",
    routeTarget: "65000:2820",
    bgpVrfInstance: document.bgpVrfInstance,
    labels: document.labels,
    refused: [],
  });
  const name = String(document.bgpVrfInstance);
  assert.match(name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  assert.ok(name.includes("node-a") && name.includes("b04") && name.length <= 253, name);
});

Deno.test("galactic explain exits 1 when the plugin would refuse the RD, and never emits it", async () => {
  // H32 = 65536: a 4-byte ASN (Type 2) only carries a 16-bit number.
  const outcome = await galactic(["explain", "--vpc", "H32", "--asn", "4200000000", "--json"], {});
  assert.equal(outcome.code, 1, outcome.stderr);
  const document = oneDocument(outcome);
  assert.equal(document.routeDistinguisher, null);
  assert.equal(document.routeTarget, null);
  const refused = document.refused as { input: string; reason: string }[];
  assert.equal(refused.length, 1);
  assert.equal(refused[0]?.input, "asn");
  assert.match(refused[0]!.reason, /4200000000/);
  assert.match(outcome.stderr, /refuse/);
});

Deno.test("galactic explain refuses an invalid VPC with a non-zero exit", async () => {
  const outcome = await galactic(["explain", "--vpc", "ab-c"], {});
  assert.notEqual(outcome.code, 0);
  assert.equal(outcome.stdout, "");
  assert.match(outcome.stderr, /base62|vpc|ab-c/i);
  assert.doesNotMatch(outcome.stderr, /Module not found|Uncaught/);
});
