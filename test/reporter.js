// Mocha's spec reporter plus one plain closing line, 'N passed, N failed, N skipped', that CI reads.
const Mocha = require('mocha');

class SpecWithSummary extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once('end', () => {
      const s = runner.stats || this.stats;
      process.stdout.write(`\nunit: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
      try {
        require('fs').mkdirSync('test-results', { recursive: true });
        require('fs').writeFileSync(
          'test-results/counts-unit.json',
          JSON.stringify({ passed: s.passes, failed: s.failures, skipped: s.pending }),
        );
      } catch {
        // counts are a convenience for the closing line
      }
    });
  }
}
module.exports = SpecWithSummary;
