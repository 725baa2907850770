import type { LaunchOptions } from '../node/launch-file';
import { intOption, type OptionValues } from './command';

/** What a launch configuration does not say, as command-line options (check, estimate, import). */
export const LAUNCH_OPTIONS = {
  gpu: { type: 'string' },
  nodes: { type: 'string' },
  'gpus-per-node': { type: 'string' },
  'world-size': { type: 'string' },
  model: { type: 'string' },
} as const;

const PAD = ' '.repeat(53);
/** Usage lines for the launch options (aligned under a command's description). */
export const LAUNCH_USAGE = [
  'a launch configuration does not name the GPU, and often',
  'not the world size or the model: --gpu, --nodes,',
  '--gpus-per-node (or --world-size), --model fill them in',
]
  .map((l, i) => (i ? PAD : '') + l)
  .join('\n');

export function launchOptions(values: OptionValues): LaunchOptions {
  return {
    gpu: values.gpu as string | undefined,
    nodes: intOption(values, 'nodes', 1, 1 << 17),
    gpusPerNode: intOption(values, 'gpus-per-node', 1, 1024),
    worldSize: intOption(values, 'world-size', 1, 1 << 20),
    model: values.model as string | undefined,
  };
}
