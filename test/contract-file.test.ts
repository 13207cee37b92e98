import { channels } from 'lockwarden';
import { contract } from './contract.js';
import { tempRoot } from './helpers.js';

contract('file engine (flock)', {
  store: (t) => ({ root: tempRoot(t), options: {} }),
  // The gate is taken before lockwarden:wait is published: other processes see it at once.
  queued: (_store, id) =>
    new Promise((resolve) => {
      const onWait = (msg: unknown) => {
        if ((msg as { id?: string }).id !== id) return;
        channels.wait.unsubscribe(onWait);
        resolve();
      };
      channels.wait.subscribe(onWait);
    }),
});
