import { tempRoot } from './helpers.js';
import { freshNamespace, usePostgres, waitersOnServer } from './pg-helpers.js';
import { deadlockContract } from './queue-contract.js';

deadlockContract('file engine (flock)', {
  store: (t) => ({ root: tempRoot(t), options: {} }),
  queued: async () => {},
  killedGoneMs: 0,
  endedGoneMs: 0,
});

const pg = usePostgres();

deadlockContract('PostgreSQL engine (advisory locks)', {
  store: () => ({ root: pg.url, options: { namespace: freshNamespace() } }),
  queued: (store, id) => waitersOnServer(store.root, store.options.namespace as string, id, 1),
  killedGoneMs: 1000,
  endedGoneMs: 500,
});
