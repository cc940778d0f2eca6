/**
 * Lists BGPProviders through the kubeconfig given as the only argument, in a
 * fresh process (the TLS root store is per process, fixed by its first HTTP
 * client: `lib/kube/tls_roots.ts`), and prints what happened as JSON:
 * `{outcome: "accepted" | "refused", message?, storeAfter}`, `storeAfter`
 * being `DENO_TLS_CA_STORE` as the process's children would inherit it.
 *
 * @module
 */

import { BGP_PROVIDERS } from "../../lib/kube/api.ts";
import { openKubeApi } from "../../lib/kube/client.ts";
import { startDeadline } from "../../lib/kube/deadline.ts";

const api = await openKubeApi({ kind: "file", path: Deno.args[0]!, origin: "probe" }, {
  retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
});
const storeAfter = Deno.env.get("DENO_TLS_CA_STORE") ?? null;
try {
  await api.list(BGP_PROVIDERS, { deadline: startDeadline(10_000) });
  console.log(JSON.stringify({ outcome: "accepted", storeAfter }));
} catch (error) {
  console.log(
    JSON.stringify({ outcome: "refused", message: (error as Error).message, storeAfter }),
  );
} finally {
  await api.close();
}
