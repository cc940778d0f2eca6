/**
 * Which pod owns an attachment. A NAD names its (vpc, attachment), and any
 * tenant may write a NAD that names someone else's: without a check, an ADD
 * from another pod would take the attachment over and rebuild its veth. So a
 * record remembers the pod (`K8S_POD_NAMESPACE`/`K8S_POD_NAME` from
 * `CNI_ARGS`), and a recorded attachment passes to another container only
 * when it is a new sandbox of the same pod (a restarted pod: new container
 * id, same pod). When the runtime sends no pod identity, the hand-over is
 * allowed only if the record has none either (a runtime outside Kubernetes,
 * where there is no other tenant to tell apart).
 *
 * @module
 */

import { CniError, ErrorCode, show } from "../cni/errors.ts";
import type { CniEnv } from "../cni/env.ts";
import type { AttachmentRecord, PodRef } from "../state/attachments.ts";

/** The pod of this invocation, when the runtime names it. */
export function podOf(env: CniEnv): PodRef | undefined {
  const namespace = env.args.get("K8S_POD_NAMESPACE") ?? "";
  const name = env.args.get("K8S_POD_NAME") ?? "";
  return namespace !== "" && name !== "" ? { namespace, name } : undefined;
}

function describe(pod: PodRef | undefined): string {
  return pod ? show(`${pod.namespace}/${pod.name}`) : "(no pod identity)";
}

/**
 * Refuses (code 7, naming the owner pod) an ADD by another container of an
 * attachment recorded for a different pod; nothing has been touched yet.
 */
export function requireSamePod(record: AttachmentRecord | undefined, env: CniEnv): void {
  if (record === undefined || record.containerId === env.containerId) return;
  const pod = podOf(env);
  const owner = record.pod;
  const same = owner === undefined
    ? pod === undefined
    : pod !== undefined && pod.namespace === owner.namespace && pod.name === owner.name;
  if (same) return;
  throw new CniError(
    ErrorCode.InvalidConfig,
    `attachment ${show(`${record.vpc}.${record.attachment}`)} is in use by pod ${
      describe(owner)
    } (container ${show(record.containerId)}); pod ${describe(pod)} cannot take it over`,
  );
}
