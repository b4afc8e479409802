/**
 * Colours only where a person reads a terminal. picocolors alone also colours whenever `CI` is
 * set, which would put escape codes into logs and into output that scripts parse.
 */
import pc from 'picocolors';

const wanted = (stream: NodeJS.WriteStream): boolean =>
  !('NO_COLOR' in process.env) && ('FORCE_COLOR' in process.env || (stream.isTTY === true && process.env.TERM !== 'dumb'));

/** For messages on stderr (the logger). */
export const errColors = pc.createColors(wanted(process.stderr));
/** For text results on stdout. */
export const outColors = pc.createColors(wanted(process.stdout));
