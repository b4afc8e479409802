// Generated from the Python key registry (python_shim/mkey_det/models/keys/registry.py)
// by `python -m mkey_det.models.keys.manifest`. Do not edit: run
// `bash scripts/gen-key-variants.sh` after adding or changing a key variant
// (test/key-variants.test.ts fails while this file is stale).

export const KEY_VARIANT_MANIFEST = [
  { keyType: 'linear', label: 'Linear', usesCharts: false, manifold: false, backbone: 'swin-t', backboneLabel: 'Swin-T', pythonModule: 'mkey_det.models.keys.linear' },
  { keyType: 'spatialk', label: 'SpatialK', usesCharts: true, manifold: true, backbone: 'swin-t-spatialk', backboneLabel: '+ SpatialK', pythonModule: 'mkey_det.models.keys.spatialk' },
  { keyType: 'kua', label: 'KUA', usesCharts: true, manifold: true, backbone: 'swin-t-kua', backboneLabel: '+ KUA', pythonModule: 'mkey_det.models.keys.kua' },
  { keyType: 'simplek', label: 'SimpleK', usesCharts: true, manifold: true, backbone: 'swin-t-simplek', backboneLabel: '+ SimpleK', pythonModule: 'mkey_det.models.keys.simplek' },
  { keyType: 'vanillak', label: 'VanillaK', usesCharts: true, manifold: true, backbone: 'swin-t-vanillak', backboneLabel: '+ VanillaK', pythonModule: 'mkey_det.models.keys.vanillak' },
] as const;
