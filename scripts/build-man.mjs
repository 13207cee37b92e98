#!/usr/bin/env node
// Writes man/lockwarden.1 from the built option tables (npm run build runs this after tsc).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { manPage } from '../dist/cli/man.js';

const root = new URL('../', import.meta.url);
const { version } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
mkdirSync(new URL('man/', root), { recursive: true });
writeFileSync(new URL('man/lockwarden.1', root), manPage(version));
