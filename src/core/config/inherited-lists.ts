/**
 * `--cfg-options a.0.b=v` where `a` is a list the generated config inherits from its base (e.g.
 * `train_dataloader.dataset.pipeline.2.scale=(512,512)`): the generated config writes that list
 * whole, taken from the base config as mmengine loads it, with the item changed. That is what
 * tools/train.py's `--cfg-options` does on the merged config, in a file that still says only
 * what changes. Python (mmengine) is started only when such a key is given.
 */
import { asBadInput, withBridge } from '../../python/bridge.js';
import { InheritedListNeeded, type InheritedValues } from './render.js';

/**
 * `render(inherited)`; each time it needs a list of its base config (InheritedListNeeded names
 * the list and the base), fetches that list through the bridge and renders again.
 */
export async function withInheritedLists(render: (inherited: InheritedValues) => string): Promise<string> {
  let needed: InheritedListNeeded;
  try {
    return render({});
  } catch (err) {
    if (!(err instanceof InheritedListNeeded)) throw err;
    needed = err;
  }
  return withBridge(async (bridge) => {
    const inherited: Record<string, unknown> = {};
    for (;;) {
      if (needed.path in inherited) throw needed;
      try {
        Object.assign(inherited, await bridge.call<Record<string, unknown>>('config.base_values', { base: needed.base, paths: [needed.path] }, { timeoutMs: 300_000 }));
      } catch (e) {
        throw asBadInput(e, ['ValueError']);
      }
      try {
        return render(inherited);
      } catch (err) {
        if (!(err instanceof InheritedListNeeded)) throw err;
        needed = err;
      }
    }
  });
}
