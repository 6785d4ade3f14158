#!/usr/bin/env node
// The `runbook` command (package bin). The CLI is TypeScript; tsx compiles it on the fly.
require('tsx/cjs');
require('../client/cli/main.ts');
