// Bull 4 beside gravity-jobs in ./dev bench (devtools/bench.py runs it on the run's own Redis).
// Prints one JSON object: jobs per second for add one by one, addBulk and a drain with concurrency 2.
// Usage: node bench.js REDIS_URL N BULK
const Queue = require("bull");

async function main() {
  const [url, n, bulk] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
  const queue = new Queue(`bench-${process.pid}`, url);
  await queue.isReady();
  const rate = (count, started) => count / (Number(process.hrtime.bigint() - started) / 1e9);

  let started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await queue.add({});
  const add = rate(n, started);
  await queue.obliterate({ force: true });

  const specs = Array.from({ length: bulk }, () => ({ data: {} }));
  started = process.hrtime.bigint();
  await queue.addBulk(specs);
  const addBulk = rate(bulk, started);
  await queue.obliterate({ force: true });

  await queue.addBulk(Array.from({ length: n }, () => ({ data: {} })));
  let done = 0;
  const finished = new Promise((resolve) => queue.on("completed", () => { if (++done === n) resolve(); }));
  started = process.hrtime.bigint();
  queue.process(2, async () => null);
  await finished;
  const drain = rate(n, started);
  await queue.obliterate({ force: true });
  await queue.close();
  console.log(JSON.stringify({ add, addBulk, drain }));
}

main().catch((error) => { console.error(error); process.exit(1); });
