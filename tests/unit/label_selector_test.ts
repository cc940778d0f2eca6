import assert from "node:assert/strict";
import {
  equalitySelector,
  InvalidSelectorError,
  labelSelectorMatcher,
  parseLabelSelector,
} from "../../lib/kube/label_selector.ts";

const overlay = { "galactic.io/plane": "overlay", "bgp.miloapis.com/node": "n1" };
const underlay = { "galactic.io/plane": "underlay", "bgp.miloapis.com/node": "n1" };
const bare = { "bgp.miloapis.com/node": "n1" };

function matches(selector: unknown, labels: Record<string, string>): boolean {
  return labelSelectorMatcher(selector)(labels);
}

Deno.test("label selector: matchLabels needs every pair", () => {
  assert.equal(matches({ matchLabels: { "galactic.io/plane": "overlay" } }, overlay), true);
  assert.equal(matches({ matchLabels: { "galactic.io/plane": "overlay" } }, underlay), false);
  assert.equal(
    matches({ matchLabels: { "galactic.io/plane": "overlay", x: "y" } }, overlay),
    false,
  );
  assert.equal(matches({ matchLabels: { "galactic.io/plane": "overlay" } }, bare), false);
});

Deno.test("label selector: empty selects everything, missing selects nothing", () => {
  assert.equal(matches({}, overlay), true);
  assert.equal(matches({ matchLabels: {}, matchExpressions: [] }, {}), true);
  assert.equal(matches(undefined, overlay), false);
  assert.equal(matches(null, overlay), false);
});

Deno.test("label selector: In", () => {
  const selector = {
    matchExpressions: [{ key: "galactic.io/plane", operator: "In", values: ["overlay", "x"] }],
  };
  assert.equal(matches(selector, overlay), true);
  assert.equal(matches(selector, underlay), false);
  assert.equal(matches(selector, bare), false, "In needs the key");
});

Deno.test("label selector: NotIn matches an absent key", () => {
  const selector = {
    matchExpressions: [{ key: "galactic.io/plane", operator: "NotIn", values: ["underlay"] }],
  };
  assert.equal(matches(selector, overlay), true);
  assert.equal(matches(selector, underlay), false);
  assert.equal(matches(selector, bare), true);
});

Deno.test("label selector: Exists and DoesNotExist", () => {
  const exists = { matchExpressions: [{ key: "galactic.io/plane", operator: "Exists" }] };
  const absent = {
    matchExpressions: [{ key: "galactic.io/plane", operator: "DoesNotExist", values: [] }],
  };
  assert.equal(matches(exists, overlay), true);
  assert.equal(matches(exists, bare), false);
  assert.equal(matches(absent, overlay), false);
  assert.equal(matches(absent, bare), true);
  assert.equal(matches(exists, { "galactic.io/plane": "" }), true, "an empty value still exists");
});

Deno.test("label selector: matchLabels AND matchExpressions", () => {
  const selector = {
    matchLabels: { "bgp.miloapis.com/node": "n1" },
    matchExpressions: [{ key: "galactic.io/plane", operator: "In", values: ["overlay"] }],
  };
  assert.equal(matches(selector, overlay), true);
  assert.equal(matches(selector, underlay), false);
  assert.equal(
    matches(selector, { "galactic.io/plane": "overlay", "bgp.miloapis.com/node": "n2" }),
    false,
  );
});

Deno.test("label selector: invalid selectors are errors naming the bad part", () => {
  const cases: [unknown, RegExp][] = [
    [{ matchExpressions: [{ key: "a", operator: "In" }] }, /operator In needs at least one value/],
    [
      { matchExpressions: [{ key: "a", operator: "NotIn", values: [] }] },
      /operator NotIn needs at least one value/,
    ],
    [
      { matchExpressions: [{ key: "a", operator: "Exists", values: ["x"] }] },
      /operator Exists takes no values/,
    ],
    [
      { matchExpressions: [{ key: "a", operator: "DoesNotExist", values: ["x"] }] },
      /DoesNotExist takes no values/,
    ],
    [
      { matchExpressions: [{ key: "a", operator: "Gt", values: ["1"] }] },
      /operator "Gt" is not one of/,
    ],
    [
      { matchExpressions: [{ key: "a", operator: "in", values: ["1"] }] },
      /operator "in" is not one of/,
    ],
    [{ matchExpressions: [{ key: "Bad Key", operator: "Exists" }] }, /key "Bad Key" is invalid/],
    [{ matchLabels: { a: "has space" } }, /value "has space" is not a label value/],
    [{ matchLabels: { "UPPER.example/x": "v" } }, /prefix must be a DNS subdomain/],
    [{ matchLabels: ["a"] }, /matchLabels is not an object/],
    [{ matchExpressions: {} }, /matchExpressions is not a list/],
    ["a=b", /is not an object/],
  ];
  for (const [selector, message] of cases) {
    assert.throws(() => labelSelectorMatcher(selector), (error: Error) => {
      assert.ok(error instanceof InvalidSelectorError, `${JSON.stringify(selector)}: ${error}`);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("label selector: parse normalizes and drops empty values of Exists", () => {
  assert.deepEqual(
    parseLabelSelector({
      matchExpressions: [{ key: "a", operator: "Exists", values: [] }],
      matchLabels: null,
    }),
    { matchExpressions: [{ key: "a", operator: "Exists" }] },
  );
});

Deno.test("label selector: equality selector text", () => {
  assert.equal(
    equalitySelector({ "bgp.miloapis.com/node": "n1", a: "b" }),
    "bgp.miloapis.com/node=n1,a=b",
  );
});
