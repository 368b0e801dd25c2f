// Allocation-heavy, deterministic Java workload for tests/real/run.sh.
//
// The JVM's native side (direct ByteBuffers via Unsafe.allocateMemory, zlib's
// Deflater/Inflater state and buffers, thread stacks bookkeeping, JIT, GC
// data structures) all goes through malloc/free/realloc, so running this with
// LD_PRELOAD=liboxmalloc.so exercises the allocator from many threads.
//
// Output: only values fully determined by this code (no timings, hash codes
// of objects, thread scheduling order). Threads store their results in
// arrays; main prints them in index order after joining.

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;
import java.util.zip.Inflater;

public final class Workload {

    static final int THREADS = 6;

    // ------------------------------------------------------------------
    // Direct ByteBuffers: many of them, various sizes, written and read back.
    // ------------------------------------------------------------------

    static long directBuffers(int idx) {
        SplittableRandom rng = new SplittableRandom(42 + idx);
        long checksum = 0;
        List<ByteBuffer> live = new ArrayList<>();
        for (int round = 0; round < 5000; round++) {
            int size;
            switch (round % 4) {
                case 0: size = 1 + rng.nextInt(64); break;             // tiny
                case 1: size = 64 + rng.nextInt(4096); break;          // small
                case 2: size = 4096 + rng.nextInt(128 * 1024); break;  // medium
                default: size = rng.nextInt(10) == 0
                        ? 256 * 1024 + rng.nextInt(2 * 1024 * 1024)    // large (mmap-sized)
                        : 16 + rng.nextInt(1024);
            }
            ByteBuffer b = ByteBuffer.allocateDirect(size).order(ByteOrder.LITTLE_ENDIAN);
            byte seed = (byte) (round * 31 + idx);
            for (int i = 0; i < size; i++) {
                b.put(i, (byte) (seed + i * 7));
            }
            if (size >= 8) {
                b.putLong(0, (long) round * 0x9E3779B97F4A7C15L + idx);
            }
            live.add(b);
            // Keep a bounded working set: drop some buffers (eventually freed
            // by the Cleaner after GC) in a deterministic pattern.
            if (live.size() > 64) {
                ByteBuffer victim = live.remove((round * 7) % live.size());
                checksum = checksum * 31 + verify(victim);
            }
        }
        for (ByteBuffer b : live) {
            checksum = checksum * 31 + verify(b);
        }
        return checksum;
    }

    static long verify(ByteBuffer b) {
        long sum = b.capacity();
        int n = b.capacity();
        for (int i = 8; i < n; i += 13) {
            sum += b.get(i) & 0xff;
        }
        if (n >= 8) {
            sum ^= b.getLong(0);
        }
        return sum;
    }

    // ------------------------------------------------------------------
    // java.util.zip: Deflater/Inflater and GZIP streams, CRC32.
    // ------------------------------------------------------------------

    static byte[] makeData(int idx, int size) {
        SplittableRandom rng = new SplittableRandom(1000 + idx);
        byte[] data = new byte[size];
        String[] words = {"malloc", "free", "realloc", "calloc", "arena", "bin", "chunk",
                "tcache", "fastbin", "unsorted", "smallbin", "largebin", "mmap", "top"};
        int pos = 0;
        while (pos < size) {
            if (rng.nextInt(8) == 0) {
                data[pos++] = (byte) rng.nextInt(256);      // some noise
            } else {
                byte[] w = words[rng.nextInt(words.length)].getBytes();
                for (int i = 0; i < w.length && pos < size; i++) {
                    data[pos++] = w[i];
                }
                if (pos < size) {
                    data[pos++] = ' ';
                }
            }
        }
        return data;
    }

    static long crc(byte[] b, int off, int len) {
        CRC32 c = new CRC32();
        c.update(b, off, len);
        return c.getValue();
    }

    static String zipRoundTrip(int idx) throws IOException, DataFormatException {
        int size = 3 * 1024 * 1024 + idx * 12345;
        byte[] data = makeData(idx, size);
        long dataCrc = crc(data, 0, data.length);

        // Deflater/Inflater with small, varying chunk sizes (many native calls).
        Deflater def = new Deflater(1 + idx % 9);
        def.setInput(data);
        def.finish();
        ByteArrayOutputStream compressed = new ByteArrayOutputStream();
        byte[] chunk = new byte[1000 + idx * 100];
        while (!def.finished()) {
            int n = def.deflate(chunk);
            compressed.write(chunk, 0, n);
        }
        def.end();
        byte[] comp = compressed.toByteArray();

        Inflater inf = new Inflater();
        inf.setInput(comp);
        byte[] back = new byte[size];
        int off = 0;
        while (!inf.finished()) {
            int n = inf.inflate(back, off, Math.min(777 + idx, size - off));
            off += n;
            if (n == 0 && inf.needsInput()) {
                break;
            }
        }
        inf.end();
        boolean ok1 = off == size && Arrays.equals(back, data);

        // GZIP streams.
        ByteArrayOutputStream gzBytes = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(gzBytes, 4096)) {
            for (int p = 0; p < size; p += 65536) {
                gz.write(data, p, Math.min(65536, size - p));
            }
        }
        byte[] gzData = gzBytes.toByteArray();
        ByteArrayOutputStream unz = new ByteArrayOutputStream(size);
        try (GZIPInputStream in = new GZIPInputStream(new ByteArrayInputStream(gzData), 512)) {
            byte[] buf = new byte[8192];
            int n;
            while ((n = in.read(buf)) > 0) {
                unz.write(buf, 0, n);
            }
        }
        byte[] gunzipped = unz.toByteArray();
        boolean ok2 = Arrays.equals(gunzipped, data);

        // Many short-lived Deflaters (native z_stream alloc/free each time).
        long small = 0;
        for (int i = 0; i < 300; i++) {
            Deflater d = new Deflater(i % 10);
            int len = 100 + (i * 37) % 5000;
            d.setInput(data, i * 1000, len);
            d.finish();
            byte[] out = new byte[len + 64];
            int n = d.deflate(out);
            d.end();
            small = small * 31 + crc(out, 0, n) + n;
        }

        return String.format("size=%d crc=%08x deflated=%d crc=%08x inflate=%b gzip=%d gunzip=%b small=%d",
                size, dataCrc, comp.length, crc(comp, 0, comp.length), ok1,
                gzData.length, ok2, small);
    }

    // ------------------------------------------------------------------
    // Heap collections (mostly Java heap, but exercises GC + JIT natively).
    // ------------------------------------------------------------------

    static String collections(int idx) {
        Map<String, Integer> map = new HashMap<>();
        TreeMap<Integer, String> tree = new TreeMap<>();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 150_000; i++) {
            String k = "k" + idx + "-" + (i * 2654435761L % 1_000_003);
            map.merge(k, 1, Integer::sum);
            if (i % 3 == 0) {
                tree.put(i * 17 % 100_003, k);
            }
            if (i % 100 == 0) {
                sb.append(k).append(';');
            }
        }
        long sum = 0;
        for (Map.Entry<Integer, String> e : tree.entrySet()) {
            sum = sum * 31 + e.getKey() + e.getValue().length();
        }
        CRC32 c = new CRC32();
        c.update(sb.toString().getBytes());
        return String.format("map=%d tree=%d sum=%d sb=%d crc=%08x",
                map.size(), tree.size(), sum, sb.length(), c.getValue());
    }

    public static void main(String[] args) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        List<Future<String>> results = new ArrayList<>();
        ConcurrentHashMap<Integer, Long> bufferSums = new ConcurrentHashMap<>();
        for (int t = 0; t < THREADS; t++) {
            final int idx = t;
            results.add(pool.submit(() -> {
                long direct = directBuffers(idx);
                bufferSums.put(idx, direct);
                String zip = zipRoundTrip(idx);
                String coll = collections(idx);
                return String.format("direct=%d %s %s", direct, zip, coll);
            }));
        }
        // Plain threads too, allocating direct buffers concurrently with the pool.
        Thread[] extra = new Thread[3];
        long[] extraSums = new long[extra.length];
        for (int t = 0; t < extra.length; t++) {
            final int idx = t;
            extra[t] = new Thread(() -> extraSums[idx] = directBuffers(100 + idx), "extra-" + t);
            extra[t].start();
        }
        for (int t = 0; t < THREADS; t++) {
            System.out.println("task" + t + ": " + results.get(t).get());
        }
        for (int t = 0; t < extra.length; t++) {
            extra[t].join();
            System.out.println("extra" + t + ": direct=" + extraSums[t]);
        }
        pool.shutdown();
        long total = 0;
        for (int t = 0; t < THREADS; t++) {
            total += bufferSums.get(t);
        }
        System.out.println("direct total: " + total);
        System.out.println("java workload done");
    }
}
