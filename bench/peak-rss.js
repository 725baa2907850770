// Preloaded with `node --require`: reports the process's peak RSS and lifetime on fd 3 at exit.
const started = process.hrtime.bigint();
process.on('exit', () => {
  const report = JSON.stringify({
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    ms: Number(process.hrtime.bigint() - started) / 1e6,
  });
  try {
    require('fs').writeSync(3, report + '\n');
  } catch {
    /* not run by the bench */
  }
});
