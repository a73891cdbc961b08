export { applyLayer, type ApplyOptions, OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './apply.js';
export { exportChanges, exportOverlayUpper, isOverlayOpaque, isOverlayWhiteout } from './export.js';
export { changes, overlayChanges } from './changes.js';
export { changesSize, directorySize } from './size.js';
export { decompressed } from './gzip.js';
export { readXattrs, writeXattr } from './xattrs.js';
export { entryComponents, isInside } from './paths.js';
export { DirectWrites } from './direct-writes.js';
