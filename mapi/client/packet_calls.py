"""The calls the clients of MAPI servers make alike: get_next_pkt and loop in terms of a packet
reader (the TO_BUFFER's mapped ring for mapid on this machine, its gRPC stream for a remote one,
the sensors' merged streams for a distributed flow), the device queries in terms of _value, and
forgetting the flows of a deleted device."""
from mapi.proto import pb


class PacketCalls:
    def _packet_reader(self, fd, fid):
        """What delivers the packets of (fd, fid): anything with next_packet(timeout)."""
        return self.function_instance(fd, fid)

    def get_next_pkt(self, fd, fid, timeout=None):
        return self._packet_reader(fd, fid).next_packet(timeout)

    def loop(self, fd, fid, cnt, callback):
        """callback(packet) for cnt packets (cnt <= 0: to the end of the stream); how many."""
        reader = self._packet_reader(fd, fid)
        done = 0
        while cnt <= 0 or done < cnt:
            pkt = reader.next_packet(None)
            if pkt is None:
                break
            callback(pkt)
            done += 1
        return done


class DeviceQueries:
    """Device calls answered by a value (the client's _value(call, message))."""

    def get_device_info(self, dev):
        return self._value("get_device_info", pb.DeviceRef(dev=dev))

    def stats(self, dev):
        return self._value("stats", pb.DeviceRef(dev=dev))

    def devices(self):
        return self._value("devices")

    def _forget_flows_of(self, dev):
        """After the server deleted `dev`: its flows are gone here too."""
        with self._lock:
            gone = [fd for fd, f in self._flows.items() if f.dev == dev]
        for fd in gone:
            self._forget(fd)
