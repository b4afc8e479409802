/**
 * The published numbers `mkey-det report` shows as reference rows, in one place: the paper's
 * Table 3 (detection) and MMDetection's Swin-T 3x model, and the paper's Tables 1 and 2
 * (ImageNet-1K classification). Source: the paper ("A Manifold Representation of the Key in Vision
 * Transformers"), as transcribed in shared/REFERENCE.md.
 */
import type { ClsReferenceRow, ReferenceRow } from './types.js';

/** Table 3 of the paper and MMDetection's published Swin-T 3x model, shown as reference rows. */
const DETECTION_ROWS: readonly ReferenceRow[] = [
  {
    label: 'Swin-T',
    source: 'paper, Table 3',
    keyType: 'linear',
    charts: null,
    schedule: '3x',
    epochs: 36,
    ap: { APb: 45.0, APb50: 67.1, APb75: 49.5, APm: 40.7, APm50: 63.8, APm75: 43.6 },
  },
  {
    label: '+ SpatialK (8 charts)',
    source: 'paper, Table 3',
    keyType: 'spatialk',
    charts: 8,
    schedule: '3x',
    epochs: 36,
    ap: { APb: 45.5, APb50: 67.3, APb75: 49.9, APm: 41.0, APm50: 64.3, APm75: 44.1 },
  },
  {
    label: 'Swin-T 3x (ms-crop)',
    source: 'MMDetection 3.3.0 model zoo',
    keyType: 'linear',
    charts: null,
    schedule: '3x',
    epochs: 36,
    ap: { APb: 46.0, APm: 41.6 },
    note: 'whole detector 48M params, 267G FLOPs',
  },
];

const T1 = 'paper, Table 1';
const T2 = 'paper, Table 2';
/** One row of Table 1 (8 charts for the manifold keys, 300 epochs, 224x224). */
const t1 = (family: string, label: string, keyType: string, paramsM: number, flopsG: number, top1: number, top5: number): ClsReferenceRow => ({
  label,
  source: T1,
  family,
  keyType,
  charts: keyType === 'linear' ? null : 8,
  epochs: 300,
  paramsM,
  flopsG,
  acc: { top1, top5 },
});

/**
 * Tables 1 and 2 of the paper (ImageNet-1K, 224x224, 300 epochs; params of the whole classifier,
 * 1000-class head included; FLOPs counted with fvcore). The paper prints `+ SpatialK / KUA` and
 * `+ SimpleK / VanillaK` of the ViTs on one line each; here each key has its row.
 */
const CLASSIFICATION_ROWS: readonly ClsReferenceRow[] = [
  t1('swin-t', 'Swin-T', 'linear', 28, 4.6, 80.99, 95.5),
  t1('swin-t', 'Swin-T + SpatialK', 'spatialk', 61, 10.4, 81.51, 95.69),
  t1('swin-t', 'Swin-T + KUA', 'kua', 61, 10.4, 81.26, 95.58),
  t1('swin-t', 'Swin-T + SimpleK', 'simplek', 44, 7.6, 81.31, 95.55),
  t1('swin-t', 'Swin-T + VanillaK', 'vanillak', 44, 7.6, 81.29, 95.53),
  t1('vit-s', 'ViT-S/16', 'linear', 22, 4.7, 78.23, 93.92),
  t1('vit-s', 'ViT-S/16 + SpatialK', 'spatialk', 52, 11.3, 78.65, 94.18),
  t1('vit-s', 'ViT-S/16 + KUA', 'kua', 52, 11.3, 78.74, 94.23),
  t1('vit-s', 'ViT-S/16 + SimpleK', 'simplek', 38, 8.6, 78.34, 93.98),
  t1('vit-s', 'ViT-S/16 + VanillaK', 'vanillak', 38, 8.6, 78.8, 94.1),
  t1('vit-b', 'ViT-B/16', 'linear', 87, 17.7, 79.44, 93.91),
  t1('vit-b', 'ViT-B/16 + SpatialK', 'spatialk', 197, 41.5, 78.69, 93.93),
  t1('vit-b', 'ViT-B/16 + KUA', 'kua', 197, 41.5, 78.41, 93.6),
  t1('vit-b', 'ViT-B/16 + SimpleK', 'simplek', 140, 30.4, 78.68, 93.87),
  t1('vit-b', 'ViT-B/16 + VanillaK', 'vanillak', 140, 30.4, 80.31, 94.54),
  {
    label: 'ViT-B/16 + VanillaK without CB (4 charts)',
    source: T2,
    family: 'vit-b',
    keyType: 'vanillak',
    charts: 4,
    epochs: 300,
    paramsM: 110,
    acc: { top1: 80.24 },
    note: 'VanillaK without CB',
  },
  {
    label: 'ViT-B/16 + VanillaK without CB (8 charts)',
    source: T2,
    family: 'vit-b',
    keyType: 'vanillak',
    charts: 8,
    epochs: 300,
    paramsM: 140,
    acc: { top1: 78.69 },
    note: 'VanillaK without CB',
  },
];

/** Each task's reference rows. */
export const REFERENCE_ROWS: { readonly detection: readonly ReferenceRow[]; readonly classification: readonly ClsReferenceRow[] } = {
  detection: DETECTION_ROWS,
  classification: CLASSIFICATION_ROWS,
};
