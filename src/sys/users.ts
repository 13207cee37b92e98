/** Who we are and who owns a process, for holder records and permission messages. */
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';

let passwd: Map<number, string> | null = null;

/** The login name of a uid from /etc/passwd, else `uid N`. */
export function userName(uid: number): string {
  if (passwd === null) {
    passwd = new Map();
    try {
      for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
        const [name, , id] = line.split(':');
        if (name && id && !passwd.has(Number(id))) passwd.set(Number(id), name);
      }
    } catch {
      // No passwd file (minimal containers): numeric ids below.
    }
  }
  return passwd.get(uid) ?? `uid ${uid}`;
}

let self: { user: string; uid: number; host: string } | null = null;

/** This process's user name, uid and host name (computed once). */
export function currentIdentity(): { user: string; uid: number; host: string } {
  if (self === null) {
    const uid = process.getuid?.() ?? -1;
    let user: string;
    try {
      user = userInfo().username;
    } catch {
      user = userName(uid);
    }
    self = { user, uid, host: hostname() };
  }
  return self;
}

/** The uid owning a live local process, or null if it is gone or unreadable. */
export function processOwner(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^Uid:\s+(\d+)/m.exec(status);
    return match?.[1] === undefined ? null : Number(match[1]);
  } catch {
    return null;
  }
}
