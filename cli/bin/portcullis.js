#!/usr/bin/env node
// The installed `portcullis` command: runs the TypeScript sources through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
