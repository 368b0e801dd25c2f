//! The OS layer's view of the machine: the CPU count that sizes the arena limit follows the
//! affinity mask and cgroup quota (std's available_parallelism reads the same sources).

#[test]
fn usable_cpus_follow_affinity_and_quota() {
    let ours = oxmalloc_core::os::usable_cpus();
    let std_view = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    assert_eq!(ours, std_view);
    assert_eq!(oxmalloc_core::tunables::arena_limit(ours), 8 * ours);
}

#[test]
fn a_narrower_affinity_mask_lowers_the_count() {
    // Pin this thread to its first allowed CPU and ask again (sched_getaffinity(0) reads the
    // calling thread's mask).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        let first = (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .unwrap();
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(first, &mut one);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one),
            0
        );
        assert_eq!(oxmalloc_core::os::usable_cpus(), 1);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
