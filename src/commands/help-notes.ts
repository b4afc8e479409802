/** Help text that several commands print after their options, written once. */

/** Said by every command that builds a model from a run folder's config.py (test, analyze qk / attention). */
export const RUN_CONFIG_TRUST = `A run folder's config.py is Python that MMDetection executes to build the model, like any
MMDetection config: use runs you trust. (mkey-det report reads configs as data and runs none.)`;
