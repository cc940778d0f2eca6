// Kernel smoke test: does this kernel have every primitive SPEC §5 builds on?
// A VRF (table 4242) with a veth enslaved, net.vrf.strict_mode=1 and a
// seg6local End.DT46 vrftable route, all inside a throwaway netns.
//
// Needs root. On a kernel without VRF devices (or without root) it is
// reported as ignored, never as passed: run it through `bash tests/lab/run.sh`
// to get a kernel that has them.
import assert from "node:assert/strict";

const TABLE = 4242;
const SID = "fc00:4242::1";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, ...args: string[]): Promise<Run> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } catch (e) {
    return { code: 127, stdout: "", stderr: String(e) };
  }
}

async function mustRun(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, ...args);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Why the test cannot run here, or null when it can. */
async function skipReason(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.uid() !== 0) return "needs root";
  const ns = `gsprobe${Deno.pid}`;
  if ((await run("ip", "netns", "add", ns)).code !== 0) return "cannot create a netns";
  try {
    const r = await run("ip", "-n", ns, "link", "add", "p", "type", "vrf", "table", "10");
    return r.code === 0
      ? null
      : `kernel ${Deno.osRelease()} has no VRF device (${r.stderr.trim()})`;
  } finally {
    await run("ip", "netns", "del", ns);
  }
}

const skip = await skipReason();
if (skip) console.log(`kernel_smoke_test: ignored: ${skip}; use bash tests/lab/run.sh`);

Deno.test({
  name: "kernel: VRF + enslaved veth + strict_mode + seg6local End.DT46 vrftable",
  ignore: skip !== null,
  fn: async () => {
    const ns = `gsmoke${Deno.pid}`;
    const ipn = (...a: string[]): Promise<string> => mustRun("ip", "-n", ns, ...a);
    const inNs = (...a: string[]): Promise<string> => mustRun("ip", "netns", "exec", ns, ...a);
    await mustRun("ip", "netns", "add", ns);
    try {
      await ipn("link", "set", "lo", "up");
      await ipn("link", "add", "gsvrf", "type", "vrf", "table", String(TABLE));
      await ipn("link", "add", "gsh", "type", "veth", "peer", "name", "gsg");
      await ipn("link", "set", "gsh", "master", "gsvrf");
      for (const dev of ["gsvrf", "gsh", "gsg"]) await ipn("link", "set", dev, "up");

      // net.vrf.strict_mode is per netns; /proc/sys follows the caller's netns.
      const strictMode = "/proc/sys/net/vrf/strict_mode";
      await inNs("sh", "-c", `echo 1 > ${strictMode}`);
      assert.equal((await inNs("cat", strictMode)).trim(), "1");

      const dt46 = `encap seg6local action End.DT46 vrftable ${TABLE} dev gsvrf`;
      await ipn("-6", "route", "add", `${SID}/128`, ...dt46.split(" "));

      const [vrf] = JSON.parse(await ipn("-json", "-details", "link", "show", "gsvrf"));
      assert.equal(vrf?.linkinfo?.info_kind, "vrf");
      assert.equal(vrf?.linkinfo?.info_data?.table, TABLE);

      const [veth] = JSON.parse(await ipn("-json", "-details", "link", "show", "gsh"));
      assert.equal(veth?.linkinfo?.info_kind, "veth");
      assert.equal(veth?.master, "gsvrf");
      assert.equal(veth?.linkinfo?.info_slave_kind, "vrf");

      const routes = JSON.parse(await ipn("-json", "-6", "route", "show", `${SID}/128`));
      assert.equal(routes.length, 1, JSON.stringify(routes));
      const [route] = routes;
      assert.equal(route?.dst, SID);
      assert.equal(route?.encap, "seg6local");
      assert.equal(route?.action, "End.DT46");
      // iproute2 prints vrftable as a string in JSON ("4242").
      assert.equal(Number(route?.vrftable), TABLE);
    } finally {
      await run("ip", "netns", "del", ns);
    }
  },
});
