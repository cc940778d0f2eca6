/**
 * Ownership bound to the pod (lib/verbs/pod_owner.ts): who may take over a
 * recorded attachment.
 */

import assert from "node:assert/strict";
import { type CniEnv, parseCniEnv } from "../../lib/cni/env.ts";
import { CniError } from "../../lib/cni/errors.ts";
import type { AttachmentRecord } from "../../lib/state/attachments.ts";
import { podOf, requireSamePod } from "../../lib/verbs/pod_owner.ts";

function env(containerId: string, args: string): CniEnv {
  return parseCniEnv({
    CNI_COMMAND: "ADD",
    CNI_CONTAINERID: containerId,
    CNI_NETNS: "/var/run/netns/x",
    CNI_IFNAME: "net1",
    CNI_PATH: "/opt/cni/bin",
    CNI_ARGS: args,
  });
}

function record(containerId: string, pod?: { namespace: string; name: string }): AttachmentRecord {
  return {
    network: "n",
    vpc: "0000000jU",
    attachment: "00G",
    vpcHex: "b04",
    containerId,
    ifname: "net1",
    netns: "/var/run/netns/x",
    table: 1000,
    node: "node-a",
    ...(pod && { pod }),
  };
}

const POD_A = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a";
const POD_A_REF = { namespace: "default", name: "pod-a" };

Deno.test("podOf reads K8S_POD_NAMESPACE and K8S_POD_NAME, both or nothing", () => {
  assert.deepEqual(podOf(env("c", POD_A)), POD_A_REF);
  assert.equal(podOf(env("c", "K8S_POD_NAME=pod-a")), undefined);
  assert.equal(podOf(env("c", "")), undefined);
});

Deno.test("who may take over a recorded attachment", async (t) => {
  const allowed: [string, AttachmentRecord | undefined, string, string][] = [
    ["no record", undefined, "c2", "K8S_POD_NAMESPACE=b;K8S_POD_NAME=x"],
    ["the owning container itself", record("c1", POD_A_REF), "c1", ""],
    ["a new sandbox of the same pod", record("c1", POD_A_REF), "c2", POD_A],
    ["no identity on either side", record("c1"), "c2", ""],
  ];
  for (const [label, owner, id, args] of allowed) {
    await t.step(`allowed: ${label}`, () => requireSamePod(owner, env(id, args)));
  }
  const refused: [string, AttachmentRecord, string, RegExp][] = [
    [
      "another pod",
      record("c1", POD_A_REF),
      "K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-b",
      /"default\/pod-a".*"default\/pod-b"/,
    ],
    [
      "same name, other namespace",
      record("c1", POD_A_REF),
      "K8S_POD_NAMESPACE=x;K8S_POD_NAME=pod-a",
      /"x\/pod-a"/,
    ],
    ["a runtime that names no pod", record("c1", POD_A_REF), "", /\(no pod identity\) cannot/],
    [
      "a named pod, record without identity",
      record("c1"),
      POD_A,
      /in use by pod \(no pod identity\)/,
    ],
  ];
  for (const [label, owner, args, message] of refused) {
    await t.step(`refused: ${label}`, () => {
      assert.throws(() => requireSamePod(owner, env("c2", args)), (error: unknown) => {
        assert.ok(error instanceof CniError);
        assert.equal(error.code, 7);
        assert.match(error.message, message);
        assert.match(error.message, /container "c1"/);
        return true;
      });
    });
  }
});
