#!/usr/bin/env node
// The slowest test files of the last `npm test`, from vitest's JSON report and pytest's JUnit XML
// (both written under .test-results/ by scripts/test.sh), so the next slow test is visible.
//   node scripts/test-times.mjs [--top N] [DIR]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 10;
const dir = args[0] ?? '.test-results';

const files = [];
const totals = [];
const vitestJson = join(dir, 'vitest.json');
if (existsSync(vitestJson)) {
  const r = JSON.parse(readFileSync(vitestJson, 'utf8'));
  for (const t of r.testResults) {
    files.push({ file: t.name.replace(/^.*?\/(test\/)/, '$1'), seconds: (t.endTime - t.startTime) / 1000, tests: t.assertionResults.length });
  }
  const wall = Math.max(...r.testResults.map((t) => t.endTime)) - r.startTime;
  totals.push(`vitest ${(wall / 1000).toFixed(0)} s wall, ${r.numTotalTests} tests (${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped)`);
}
const pytestXml = join(dir, 'pytest.xml');
if (existsSync(pytestXml)) {
  const xml = readFileSync(pytestXml, 'utf8');
  const byFile = new Map();
  for (const m of xml.matchAll(/<testcase [^>]*classname="([^"]+)"[^>]*time="([\d.]+)"/g)) {
    // classname "tests.test_bench" or "tests.test_bench.TestX": the module is the first two parts
    const file = `python_shim/${m[1].split('.').slice(0, 2).join('/')}.py`;
    const f = byFile.get(file) ?? { file, seconds: 0, tests: 0 };
    f.seconds += Number(m[2]);
    f.tests += 1;
    byFile.set(file, f);
  }
  files.push(...byFile.values());
  const suite = xml.match(/<testsuite [^>]*>/)?.[0] ?? '';
  const attr = (name) => Number(suite.match(new RegExp(`${name}="([\\d.]+)"`))?.[1] ?? 0);
  totals.push(`pytest ${attr('time').toFixed(0)} s, ${attr('tests')} tests (${attr('failures') + attr('errors')} failed, ${attr('skipped')} skipped)`);
}
if (files.length === 0) {
  console.error(`[test] no test results under ${dir}`);
  process.exit(0);
}
files.sort((a, b) => b.seconds - a.seconds);
console.error(`[test] the ${Math.min(top, files.length)} slowest test files (vitest: the file's wall time; pytest: the sum of its tests):`);
for (const f of files.slice(0, top)) console.error(`  ${f.seconds.toFixed(1).padStart(7)} s  ${String(f.tests).padStart(3)} tests  ${f.file}`);
for (const t of totals) console.error(`[test] ${t}`);
