// The pickle opcode machine behind both pickle readers (torch checkpoints, numpy data files). It runs no code: a
// GLOBAL becomes whatever the reader's whitelist maps the name to (or an error), and REDUCE, NEWOBJ, BUILD and
// persistent ids only hand values to the reader's hooks, which build descriptions. The stack, memo, marks, framing
// and every plain-value opcode live here once, so the two readers accept the same pickles up to their whitelists.

/** Python dict keys kept: strings (state dict keys, CIFAR fields), ints (optimizer state), booleans and None. */
export type DictKey = string | number | bigint | boolean | null

/**
 * What unpickling yields: `null`, booleans, numbers (`bigint` beyond 2^53), strings, `Uint8Array` (bytes), arrays
 * (lists; tuples are frozen arrays), `Map` (dicts), and `X`, the inert values the reader's hooks make.
 */
export type PickleData<X> = null | boolean | number | bigint | string | Uint8Array | PickleData<X>[] | Map<DictKey, PickleData<X>> | X

export function isDictKey(v: unknown): v is DictKey {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean'
}

/** A whitelisted global kept as its name: the only thing a pickle can later call or instantiate, through the hooks. */
export interface GlobalRef {
  readonly kind: 'global'
  name: string
}

export function isGlobalRef(v: unknown): v is GlobalRef {
  return typeof v === 'object' && v !== null && (v as GlobalRef).kind === 'global'
}

/** Throws the reader's error for `what`, placed at the opcode being read. */
export type Fail = (what: string) => never

/**
 * `_codecs.encode(text, 'latin1')`, how Python 3 pickles `bytes` at protocols below 3 (torch.save's default is 2):
 * the one call both readers' whitelists share.
 */
export function codecsEncode(args: readonly unknown[], fail: Fail): Uint8Array {
  const [text] = args
  if (typeof text !== 'string') return fail('_codecs.encode called without a string')
  return new Uint8Array(Buffer.from(text, 'latin1'))
}

/** What differs between readers: the error they throw, their whitelist, and what its names do. */
export interface PickleDialect<X> {
  /** What the file should have been, for the message about a refused opcode (`'a torch checkpoint'`). */
  fileKind: string
  /**
   * What a Python 2 `str` (BINSTRING) becomes, as `pickle.load`'s `encoding` argument decides: `'utf8'` text (torch.load's
   * default) or `'bytes'` (what numpy arrays pickled by Python 2 need, since their raw data is such a `str`).
   */
  encoding: 'utf8' | 'bytes'
  /** The error to throw for `what`, found at byte `at` of the buffer. */
  error(what: string, at: number): Error
  /** The inert value for a GLOBAL or STACK_GLOBAL naming `qualified` (`module.name`); fails for names off the whitelist. */
  global(qualified: string, fail: Fail): PickleData<X>
  /** REDUCE: `fn(*args)`, where `fn` came from `global`. */
  call(fn: PickleData<X>, args: PickleData<X>[], fail: Fail): PickleData<X>
  /** NEWOBJ: `cls.__new__(cls, *args)`. */
  newObject(cls: PickleData<X>, args: PickleData<X>[], fail: Fail): PickleData<X>
  /** BUILD: sets `state` on `target`, which stays on the stack. */
  build(target: PickleData<X>, state: PickleData<X>, fail: Fail): void
  /** PERSID (its pid is a string) and BINPERSID (any value); without this hook both opcodes are refused. */
  persistentLoad?(pid: PickleData<X>, fail: Fail): PickleData<X>
}

const MARK = Symbol('mark')

/**
 * Reads one pickle from `bytes` starting at `start` and returns its value and the offset just after its STOP.
 * Throws `dialect.error(…)` for a truncated or malformed pickle, and for any opcode that could run code.
 *
 * @example
 * const { value, end } = unpickle(bytes, 0, { fileKind: 'a pickle', encoding: 'bytes', error, global, call, newObject: call, build })
 */
export function unpickle<X>(bytes: Uint8Array, start: number, dialect: PickleDialect<X>): { value: PickleData<X>; end: number } {
  type Value = PickleData<X>
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const stack: (Value | typeof MARK)[] = []
  const memo = new Map<number, Value>()
  let pos = start

  const fail: Fail = (what) => {
    throw dialect.error(what, pos)
  }
  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) fail(`the file ends early, inside a pickle (${n} more byte${n === 1 ? '' : 's'} expected)`)
  }
  const u8 = () => (need(1), bytes[pos++]!)
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true))
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true))
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true))
  const u64 = () => {
    need(8)
    const n = view.getBigUint64(pos, true)
    pos += 8
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${n} is too large`)
    return Number(n)
  }
  const take = (n: number) => (need(n), (pos += n), bytes.subarray(pos - n, pos))
  const line = () => {
    const end = bytes.indexOf(0x0a, pos)
    if (end < 0) fail('the file ends early, inside a text field')
    const text = Buffer.from(bytes.buffer, bytes.byteOffset + pos, end - pos).toString('latin1')
    pos = end + 1
    return text
  }
  const utf8 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8')
  const python2Str = (b: Uint8Array): Value => (dialect.encoding === 'utf8' ? utf8(b) : b)
  const pop = (): Value => {
    const v = stack.pop()
    if (v === undefined || v === MARK) return fail('the pickle stack is empty')
    return v
  }
  const top = (): Value => {
    const v = stack[stack.length - 1]
    if (v === undefined || v === MARK) return fail('the pickle stack is empty')
    return v
  }
  const popMark = (): Value[] => {
    const at = stack.lastIndexOf(MARK)
    if (at < 0) fail('no MARK on the pickle stack')
    const items = stack.splice(at) as Value[]
    items.shift()
    return items
  }
  // Frozen, so that APPEND can tell a tuple from a list.
  const tuple = (items: Value[]) => Object.freeze(items) as Value[]
  const integer = (n: bigint): number | bigint =>
    n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
  const longLE = (b: Uint8Array) => {
    let n = 0n
    for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!)
    if (b.length > 0 && b[b.length - 1]! & 0x80) n -= 1n << BigInt(8 * b.length)
    return integer(n)
  }
  const argsOf = (v: Value, op: string): Value[] => (Array.isArray(v) ? (v as Value[]) : fail(`${op} without an argument tuple`))
  const dictOf = (v: Value) => (v instanceof Map ? (v as Map<DictKey, Value>) : fail('SETITEM on something that is not a dict'))
  const listOf = (v: Value) => (Array.isArray(v) && !Object.isFrozen(v) ? (v as Value[]) : fail('APPEND on something that is not a list'))
  const key = (k: Value): DictKey => {
    if (isDictKey(k)) return k
    if (k instanceof Uint8Array) return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1')
    return fail('a dict key that is not a string, a number, a boolean or None')
  }
  const setItems = (d: Map<DictKey, Value>, items: Value[]) => {
    if (items.length % 2 !== 0) fail('a dict with an odd number of keys and values')
    for (let i = 0; i < items.length; i += 2) d.set(key(items[i]!), items[i + 1]!)
  }
  const put = (index: number) => memo.set(index, top())
  const refuse = (op: number): never =>
    fail(`pickle opcode 0x${op.toString(16).padStart(2, '0')} is not accepted (it may run code, or the file is not ${dialect.fileKind})`)

  for (;;) {
    const op = u8()
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5')
        break
      case 0x95: // FRAME: framing only helps streaming readers
        u64()
        break
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`)
        return { value: pop(), end: pos }
      case 0x28: // MARK
        stack.push(MARK)
        break
      case 0x30: // POP
        if (stack.pop() === undefined) fail('POP on an empty stack')
        break
      case 0x31: // POP_MARK
        popMark()
        break
      case 0x32: // DUP
        stack.push(top())
        break
      case 0x4e: // NONE
        stack.push(null)
        break
      case 0x88: // NEWTRUE
        stack.push(true)
        break
      case 0x89: // NEWFALSE
        stack.push(false)
        break
      case 0x49: {
        // INT (text): protocol 0 spells booleans 01 and 00
        const text = line()
        if (text === '01' || text === '00') stack.push(text === '01')
        else if (/^-?\d+$/.test(text)) stack.push(integer(BigInt(text)))
        else fail(`INT with text ${JSON.stringify(text)}`)
        break
      }
      case 0x4c: {
        // LONG (text)
        const text = line().replace(/L$/, '')
        if (!/^-?\d+$/.test(text)) fail(`LONG with text ${JSON.stringify(text)}`)
        stack.push(integer(BigInt(text)))
        break
      }
      case 0x4a: // BININT
        stack.push(i32())
        break
      case 0x4b: // BININT1
        stack.push(u8())
        break
      case 0x4d: // BININT2
        stack.push(u16())
        break
      case 0x8a: // LONG1
        stack.push(longLE(take(u8())))
        break
      case 0x8b: {
        // LONG4: no file read here holds an integer this long; the cap keeps a hostile one from costing quadratic time
        const n = i32()
        if (n > 1024) fail(`an integer of ${n} bytes`)
        stack.push(longLE(take(n)))
        break
      }
      case 0x46: // FLOAT (text)
        stack.push(Number.parseFloat(line()))
        break
      case 0x47: // BINFLOAT (big-endian)
        need(8)
        stack.push(view.getFloat64(pos, false))
        pos += 8
        break
      case 0x54: // BINSTRING: a Python 2 str
        stack.push(python2Str(take(i32())))
        break
      case 0x55: // SHORT_BINSTRING
        stack.push(python2Str(take(u8())))
        break
      case 0x42: // BINBYTES
        stack.push(take(u32()))
        break
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()))
        break
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(take(u64()))
        break
      case 0x58: // BINUNICODE
        stack.push(utf8(take(u32())))
        break
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(take(u8())))
        break
      case 0x8d: // BINUNICODE8
        stack.push(utf8(take(u64())))
        break
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]))
        break
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]))
        break
      case 0x86: {
        // TUPLE2
        const b = pop()
        stack.push(tuple([pop(), b]))
        break
      }
      case 0x87: {
        // TUPLE3
        const c = pop()
        const b = pop()
        stack.push(tuple([pop(), b, c]))
        break
      }
      case 0x74: // TUPLE
        stack.push(tuple(popMark()))
        break
      case 0x6c: // LIST
        stack.push(popMark())
        break
      case 0x5d: // EMPTY_LIST
        stack.push([])
        break
      case 0x61: {
        // APPEND
        const v = pop()
        listOf(top()).push(v)
        break
      }
      case 0x65: {
        // APPENDS: a loop, as spreading a long run into push() can overflow the call stack
        const items = popMark()
        const list = listOf(top())
        for (const item of items) list.push(item)
        break
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map())
        break
      case 0x64: {
        // DICT
        const d = new Map<DictKey, Value>()
        setItems(d, popMark())
        stack.push(d)
        break
      }
      case 0x73: {
        // SETITEM
        const v = pop()
        const k = pop()
        dictOf(top()).set(key(k), v)
        break
      }
      case 0x75: {
        // SETITEMS
        const items = popMark()
        setItems(dictOf(top()), items)
        break
      }
      case 0x71: // BINPUT
        put(u8())
        break
      case 0x72: // LONG_BINPUT
        put(u32())
        break
      case 0x70: // PUT (text)
        put(Number.parseInt(line(), 10))
        break
      case 0x94: // MEMOIZE
        put(memo.size)
        break
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET (text)
        const index = op === 0x68 ? u8() : op === 0x6a ? u32() : Number.parseInt(line(), 10)
        if (!memo.has(index)) fail(`memo entry ${index} was never stored`)
        stack.push(memo.get(index)!)
        break
      }
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const module = line()
        stack.push(dialect.global(`${module}.${line()}`, fail))
        break
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop()
        const module = pop()
        if (typeof module !== 'string' || typeof name !== 'string') return fail('STACK_GLOBAL without two strings')
        stack.push(dialect.global(`${module}.${name}`, fail))
        break
      }
      case 0x50: // PERSID (text)
        if (!dialect.persistentLoad) return refuse(op)
        stack.push(dialect.persistentLoad(line(), fail))
        break
      case 0x51: // BINPERSID
        if (!dialect.persistentLoad) return refuse(op)
        stack.push(dialect.persistentLoad(pop(), fail))
        break
      case 0x52: {
        // REDUCE
        const args = argsOf(pop(), 'REDUCE')
        stack.push(dialect.call(pop(), args, fail))
        break
      }
      case 0x81: {
        // NEWOBJ
        const args = argsOf(pop(), 'NEWOBJ')
        stack.push(dialect.newObject(pop(), args, fail))
        break
      }
      case 0x62: {
        // BUILD
        const state = pop()
        dialect.build(top(), state, fail)
        break
      }
      case 0x98: // READONLY_BUFFER: a marker only
        break
      default:
        refuse(op)
    }
  }
}
