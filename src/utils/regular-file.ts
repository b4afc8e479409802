/**
 * Reading files a user handed in (a run folder, an analysis folder) only when they are regular
 * files: opening a FIFO for reading blocks until some writer opens it, so a FIFO standing where a
 * log or a JSON file should be would hang the command for ever; devices and sockets never end.
 */
import { readFileSync, statSync } from 'node:fs';

/** Whether `path` exists and is a regular file (symbolic links followed). */
export function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The bytes of `path`; throws `Error('<path> is not a regular file')` for anything else. */
export function readRegularFile(path: string): Buffer {
  if (!statSync(path).isFile()) throw new Error(`${path} is not a regular file (a FIFO, device, socket or folder)`);
  return readFileSync(path);
}
