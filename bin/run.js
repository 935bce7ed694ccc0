#!/usr/bin/env node
import {execute} from '../dist/commands.js'

await execute({dir: import.meta.url})
