import assert from "node:assert/strict";
import { linksDeleteLines } from "../../lib/iproute2/links.ts";

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
