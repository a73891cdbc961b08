#!/usr/bin/env node
import 'reflect-metadata';
import { runCli } from './index.js';

void runCli(process.argv).then((code) => {
  process.exitCode = code;
});
