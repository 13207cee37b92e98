import { contract } from './contract.js';
import { freshNamespace, usePostgres, waitersOnServer } from './pg-helpers.js';

const pg = usePostgres();

contract('PostgreSQL engine (advisory locks)', {
  store: () => ({ root: pg.url, options: { namespace: freshNamespace() } }),
  queued: (store, id) => waitersOnServer(store.root, store.options.namespace as string, id, 1),
});
