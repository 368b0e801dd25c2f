// Real-program workload: a Java 17 program whose native-memory traffic goes
// through malloc: direct ByteBuffers (Unsafe.allocateMemory -> malloc, freed
// by the buffer's Cleaner after GC) and java.util.zip (zlib's deflate/inflate
// state is malloc'ed per Deflater/Inflater; end() or the Cleaner frees it).
//
// usage: java -XX:MaxDirectMemorySize=64m ZipDirect [ITERS]
// Prints "checksum <16 hex>", deterministic for a given ITERS.

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.GZIPOutputStream;
import java.util.zip.Inflater;

public final class ZipDirect {
    private static long seed = 42;

    private static int next(int bound) {
        seed = seed * 6364136223846793005L + 1442695040888963407L;
        return (int) ((seed >>> 33) % bound);
    }

    // Compressible but not trivial content.
    private static void fill(ByteBuffer b) {
        int n = b.capacity();
        int word = next(1 << 20);
        for (int i = 0; i < n; i++) {
            if ((i & 63) == 0) word = (word * 1103515245 + 12345) & 0x7fffffff;
            b.put(i, (byte) ("abcdefghijklmnop".charAt((word >>> (i & 15)) & 15)));
        }
    }

    public static void main(String[] args) throws IOException, DataFormatException {
        int iters = args.length > 0 ? Integer.parseInt(args[0]) : 400;
        long check = 0;
        CRC32 crc = new CRC32();
        ByteBuffer[] keep = new ByteBuffer[32];
        for (int it = 0; it < iters; it++) {
            int size = 1024 << next(10);                     // 1 KiB .. 512 KiB
            ByteBuffer src = ByteBuffer.allocateDirect(size);
            fill(src);
            keep[next(keep.length)] = src;                   // some live longer
            ByteBuffer packed = ByteBuffer.allocateDirect(size + 1024);
            Deflater def = new Deflater(1 + next(9));
            src.rewind();
            def.setInput(src);
            def.finish();
            while (!def.finished()) def.deflate(packed);
            packed.flip();
            if ((it & 1) == 0) def.end();                    // others: left to the Cleaner

            ByteBuffer out = ByteBuffer.allocateDirect(size);
            Inflater inf = new Inflater();
            inf.setInput(packed);
            while (!inf.finished() && out.hasRemaining()) inf.inflate(out);
            inf.end();
            out.flip();
            src.rewind();
            if (!out.equals(src)) throw new IllegalStateException("round trip mismatch at " + it);
            crc.reset();
            crc.update(out);
            check = check * 31 + crc.getValue() + packed.limit();

            // Many small native allocations: short GZIP streams on heap arrays.
            if ((it & 3) == 0) {
                for (int k = 0; k < 16; k++) {
                    ByteArrayOutputStream bos = new ByteArrayOutputStream();
                    try (GZIPOutputStream gz = new GZIPOutputStream(bos, 512)) {
                        byte[] chunk = new byte[256 + next(4096)];
                        for (int j = 0; j < chunk.length; j++) chunk[j] = (byte) (j % 37);
                        gz.write(chunk);
                    }
                    check += bos.size();
                }
            }
        }
        System.out.printf("checksum %016x%n", check);
    }
}
