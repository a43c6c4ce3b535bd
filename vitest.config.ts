import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start servers on port 0 and push tens of MiB; two cores are all we have.
    pool: "forks",
    maxWorkers: 2,
  },
});
