/**
 * The fake `sysctl` (procps-ng 4.0): `-w`/`-q`/`-n`/`-e` with `key=value`
 * writes and key reads in dotted or slash form, against the host netns of a
 * {@linkcode Kernel}. A failing key does not stop the others (exit 1 at the end).
 *
 * @module
 */

import { type CommandResult, type Kernel, STRERROR, sysctlDisplay, sysctlPath } from "./kernel.ts";

const LONG: Readonly<Record<string, string>> = {
  "--write": "w",
  "--quiet": "q",
  "--values": "n",
  "--ignore": "e",
};

/** Runs `sysctl` with `args` (after the program name). */
export function runSysctl(kernel: Kernel, args: readonly string[]): CommandResult {
  const fault = kernel.takeFault(["sysctl", ...args].join(" "));
  let write = false;
  let quiet = false;
  let valuesOnly = false;
  let ignore = false;
  const operands: string[] = [];
  for (const arg of args) {
    if (arg.startsWith("--")) {
      const short = LONG[arg];
      if (!short) return unsupported(args);
      if (short === "w") write = true;
      else if (short === "q") quiet = true;
      else if (short === "n") valuesOnly = true;
      else ignore = true;
    } else if (arg.startsWith("-") && arg.length > 1) {
      for (const flag of arg.slice(1)) {
        if (flag === "w") write = true;
        else if (flag === "q") quiet = true;
        else if (flag === "n") valuesOnly = true;
        else if (flag === "e") ignore = true;
        else return unsupported(args);
      }
    } else operands.push(arg);
  }
  if (operands.length === 0) return unsupported(args);
  if (fault && !fault.apply) return faultResult(fault);
  let stdout = "";
  let stderr = "";
  let code = 0;
  for (const operand of operands) {
    if (write || operand.includes("=")) {
      const eq = operand.indexOf("=");
      if (eq < 0) {
        stderr += "sysctl: command line(0): invalid syntax, continuing...\n";
        code = 1;
        continue;
      }
      const path = sysctlPath(operand.slice(0, eq).trim());
      const value = operand.slice(eq + 1).trim();
      const outcome = kernel.writeSysctl(path, value);
      if (outcome === "ok") {
        if (!quiet) stdout += valuesOnly ? `${value}\n` : `${sysctlDisplay(path)} = ${value}\n`;
      } else if (outcome === "ENOENT") {
        if (!ignore) {
          stderr += `sysctl: cannot stat /proc/sys/${path}: No such file or directory\n`;
          code = 1;
        }
      } else {
        stderr += `sysctl: setting key "${sysctlDisplay(path)}": ${STRERROR[outcome]}\n`;
        code = 1;
      }
    } else {
      const path = sysctlPath(operand.trim());
      const value = kernel.readSysctl(path);
      if (value === undefined) {
        if (!ignore) {
          stderr += `sysctl: cannot stat /proc/sys/${path}: No such file or directory\n`;
          code = 1;
        }
      } else stdout += valuesOnly ? `${value}\n` : `${sysctlDisplay(path)} = ${value}\n`;
    }
  }
  return fault ? faultResult(fault, stdout) : { code, stdout, stderr };
}

function unsupported(args: readonly string[]): CommandResult {
  return {
    code: 1,
    stdout: "",
    stderr: `fake sysctl: unsupported command: sysctl ${
      args.join(" ")
    } (extend tests/support/fake_host)\n`,
  };
}

function faultResult(
  fault: { code?: number; stderr?: string; stdout?: string },
  stdout = "",
): CommandResult {
  const text = fault.stderr ?? "sysctl: injected fault";
  return {
    code: fault.code ?? 1,
    stdout: fault.stdout ?? stdout,
    stderr: text.endsWith("\n") ? text : `${text}\n`,
  };
}
