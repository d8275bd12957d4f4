import { describe, expect, it } from "vitest";
import { formatBytes, formatDuration } from "../../src/store/formatBytes.js";

describe("formatBytes", () => {
  it("uses binary units with one decimal past bytes", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1024)).toBe("1.0 KiB");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(5 * 1024 ** 2 + 300 * 1024)).toBe("5.3 MiB");
    expect(formatBytes(4.25 * 1024 ** 3)).toBe("4.3 GiB"); // toFixed rounds half away here
    expect(formatBytes(2 * 1024 ** 4)).toBe("2.0 TiB");
  });

  it("stops at TiB", () => {
    expect(formatBytes(3 * 1024 ** 5)).toBe("3072.0 TiB");
  });
});

describe("formatDuration", () => {
  it("writes m:ss under an hour and h:mm:ss past it, rounding to the second", () => {
    expect(formatDuration(0)).toBe("0:00");
    expect(formatDuration(59.4)).toBe("0:59");
    expect(formatDuration(59.6)).toBe("1:00");
    expect(formatDuration(125)).toBe("2:05");
    expect(formatDuration(3600)).toBe("1:00:00");
    expect(formatDuration(3725)).toBe("1:02:05");
  });

  it("writes --:-- when the time is unknown", () => {
    expect(formatDuration(null)).toBe("--:--");
    expect(formatDuration(Infinity)).toBe("--:--");
    expect(formatDuration(Number.NaN)).toBe("--:--");
    expect(formatDuration(-1)).toBe("--:--");
  });
});
