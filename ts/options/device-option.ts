// The device option, declared once: the names users may pass, and the check train(), predict and Model share.
import type { Device } from '../util/device.ts'
import { bad, text, type OptionDecl, type OptionGroup } from './option.ts'

/** `auto`, `cpu`, `cuda` or `cuda:N`. */
const DEVICE_NAME = /^(auto|cpu|cuda(:\d+)?)$/
const EXPECTED = "'auto', 'cpu', 'cuda' or 'cuda:N'"

/** Throws an InputError naming `field` unless `device` is a device name. */
export function checkDevice(device: unknown, field = 'device'): Device {
  if (typeof device !== 'string' || !DEVICE_NAME.test(device)) throw bad(field, EXPECTED, device)
  return device as Device
}

/** The `device` option of a command or options table. Defaults to `'auto'`. */
export function deviceOption(group: OptionGroup): OptionDecl<Device> {
  return text<Device>({
    help: 'auto | cpu | cuda | cuda:N',
    group,
    default: 'auto',
    ok: (v) => DEVICE_NAME.test(v),
    expected: EXPECTED,
    metavar: '<device>',
  })
}
