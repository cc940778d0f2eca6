import assert from "node:assert/strict";
import { linksDeleteLines } from "../../lib/iproute2/links.ts";
import { vrfWithMembersDeleteLines } from "../../lib/iproute2/vrf.ts";

Deno.test("linksDeleteLines: the devices join one group, deleted in one call; group 0 is refused", () => {
  assert.deepEqual(linksDeleteLines(["a", "b"], 7), [
    "link set dev a group 7",
    "link set dev b group 7",
    "link del group 7",
  ]);
  // Group 0 is every device's default: `link del group 0` would empty the netns.
  for (const group of [0, -1, 1.5, 2 ** 32]) {
    assert.throws(() => linksDeleteLines(["a"], group), RangeError);
  }
});

Deno.test("vrfWithMembersDeleteLines: one group call and the table's leftovers with a table, one del per device without", () => {
  assert.deepEqual(vrfWithMembersDeleteLines({ name: "V", table: 1001 }, ["H", "G"]), [
    "link set dev H group 1001",
    "link set dev G group 1001",
    "link set dev V group 1001",
    "link del group 1001",
    "route del unreachable default metric 4278198272 table 1001",
    "route del unreachable ::/0 metric 4278198272 table 1001",
  ]);
  // No table known (an ADD that died before creating the VRF): no group to use.
  assert.deepEqual(vrfWithMembersDeleteLines({ name: "V", table: undefined }, ["H", "G"]), [
    "link del H",
    "link del G",
    "link del V",
  ]);
});
