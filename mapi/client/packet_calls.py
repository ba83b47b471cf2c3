"""get_next_pkt and loop of a client, in terms of its function_instance (the TO_BUFFER's reader:
a mapped ring for mapid on this machine, a gRPC stream for a remote one)."""


class PacketCalls:
    def get_next_pkt(self, fd, fid, timeout=None):
        return self.function_instance(fd, fid).next_packet(timeout)

    def loop(self, fd, fid, cnt, callback):
        """callback(packet) for cnt packets (cnt <= 0: to the end of the stream); how many."""
        reader = self.function_instance(fd, fid)
        done = 0
        while cnt <= 0 or done < cnt:
            pkt = reader.next_packet(None)
            if pkt is None:
                break
            callback(pkt)
            done += 1
        return done
