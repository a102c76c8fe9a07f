// Declaration-only stand-in (see README.md): gloo devices are only held by shared_ptr.
#pragma once
namespace gloo {
namespace transport {
class Device;
class UnboundBuffer;
} // namespace transport
} // namespace gloo
