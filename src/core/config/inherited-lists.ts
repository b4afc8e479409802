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
 * `render(inherited)`; when it needs lists of `base` (a config reference such as
 * `mmdet::swin/...py`), fetches them through the bridge and renders again.
 */
export async function withInheritedLists(base: string, render: (inherited: InheritedValues) => string): Promise<string> {
  try {
    return render({});
  } catch (err) {
    if (!(err instanceof InheritedListNeeded)) throw err;
  }
  const paths = new Set<string>();
  return withBridge(async (bridge) => {
    let inherited: InheritedValues = {};
    for (;;) {
      try {
        return render(inherited);
      } catch (err) {
        if (!(err instanceof InheritedListNeeded) || paths.has(err.path)) throw err;
        paths.add(err.path);
        try {
          inherited = await bridge.call<Record<string, unknown>>('config.base_values', { base, paths: [...paths] }, { timeoutMs: 300_000 });
        } catch (e) {
          throw asBadInput(e, ['ValueError']);
        }
      }
    }
  });
}
