/**
 * Whether a directory lives on a network file system, where holders of other hosts can
 * exist. On a local file system every holder is a process of this host, so a record that
 * names another host can only be forged (SECURITY.md).
 */
import { statfsSync } from 'node:fs';

/** statfs(2) f_type magic numbers of file systems that several hosts can mount at once. */
const NETWORK_FS = new Set([
  0x6969, // NFS
  0x517b, // SMB
  0xff534d42, // CIFS
  0xfe534d42, // SMB2
  0x00c36400, // Ceph
  0x5346414f, // AFS
  0x6b414653, // kAFS
  0x01021997, // 9P (v9fs)
  0x65735546, // FUSE (sshfs, GlusterFS, CephFS-fuse…): cannot tell, so allow
  0x47504653, // GPFS
  0x0bd00bd0, // Lustre
  0x7461636f, // OCFS2
  0x01161970, // GFS2
]);

const cache = new Map<string, boolean>();

/** True when `dir` is on a file system that other hosts may share; cached per directory. */
export function onNetworkFs(dir: string): boolean {
  let network = cache.get(dir);
  if (network === undefined) {
    try {
      network = NETWORK_FS.has(Number(statfsSync(dir).type));
    } catch {
      network = false; // gone or unreadable: nothing from there is believed either
    }
    cache.set(dir, network);
  }
  return network;
}
