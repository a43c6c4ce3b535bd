import { mkdir, open, readFile, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { EcrxError } from "../errors.js";

/**
 * An exclusive claim on a work folder, held by this process: a file with our pid beside the
 * folder. Two ecrx writing the same destination at once would trample each other's blobs; a
 * claim left by a process that died (SIGKILL) is taken over.
 */
export class WorkLock {
  private constructor(private readonly file: string) {}

  static async acquire(dir: string, what: string): Promise<WorkLock> {
    const file = `${dir}.lock`;
    await mkdir(dirname(file), { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(file, "wx");
        await handle.writeFile(String(process.pid));
        await handle.close();
        return new WorkLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        const holder = Number((await readFile(file, "utf8").catch(() => "")).trim());
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
          throw new EcrxError("CONFLICT", `another ecrx (pid ${holder}) is writing ${what}`, {
            hint: "wait for it to finish, or choose another destination",
          });
        }
        await rm(file, { force: true });
      }
    }
    throw new EcrxError("CONFLICT", `could not claim ${file}`);
  }

  async release(): Promise<void> {
    await rm(this.file, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but is someone else's.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
