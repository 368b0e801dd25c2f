#!/usr/bin/perl
# Allocation-heavy, deterministic Perl workload for tests/real/run.sh.
# Prints only values determined by the code: hash iteration is always over
# sorted keys (Perl randomises hash order per process).
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

sub out { print join(' ', @_), "\n" }

# Hashes: build, churn, nested structures.
my %h;
for my $i (0 .. 299_999) {
    $h{"key$i"} = [ $i, "v" x ($i % 37), { n => $i * 3 } ];
}
delete $h{"key$_"} for grep { $_ % 3 == 0 } 0 .. 299_999;
$h{"extra$_"} = join(',', 1 .. ($_ % 50)) for 0 .. 49_999;
my ($sum, $len) = (0, 0);
for my $k (sort keys %h) {
    my $v = $h{$k};
    if (ref $v) { $sum += $v->[0] + $v->[2]{n}; $len += length $v->[1] }
    else        { $len += length $v }
}
out('hash', scalar(keys %h), $sum, $len, md5_hex(join '', (sort keys %h)[map { $_ * 1000 } 0 .. 200]));

# Arrays: push/shift/splice/sort/map/grep.
my @a = map { ($_ * 7919) % 100_003 } 1 .. 400_000;
my @sorted = sort { $a <=> $b } @a;
my @strs = sort map { sprintf "%06x", $_ } @a[0 .. 99_999];
splice(@a, 1000, 50_000, ('x') x 10_000);
my @q;
for my $i (1 .. 300_000) { push @q, [$i]; shift @q if @q > 1000 }
out('array', scalar(@a), $sorted[0], $sorted[-1], $sorted[200_000], md5_hex(join ',', @strs[0 .. 999]),
    scalar(@q), $q[0][0], scalar(grep { /^[0-9]+$/ && $_ % 2 } @a));

# Strings: concatenation, repetition, substitution, split/join, sprintf, pack.
my $s = '';
$s .= chr(97 + $_ % 26) x ($_ % 11) for 1 .. 200_000;
(my $t = $s) =~ s/([aeiou])+/uc($1) . length($&)/ge;
my @words = split /[AEIOU]\d+/, $t;
my $joined = join '|', reverse @words;
my $packed = pack('N*', 1 .. 100_000);
my @unpacked = unpack('N*', $packed);
my $fmt = join '', map { sprintf "%08.3f;", $_ / 7 } 1 .. 50_000;
out('string', length $s, md5_hex($s), length $t, md5_hex($t), scalar(@words), md5_hex($joined),
    length $packed, $unpacked[-1], md5_hex($fmt));

# Regex-heavy text processing and a word count.
my $text = join ' ', map { ('alpha', 'beta', 'gamma', 'delta', 'epsilon')[$_ % 5] . ($_ % 97) } 1 .. 200_000;
my %count;
$count{$_}++ for $text =~ /\b(\w+?)\d+\b/g;
out('regex', join(',', map { "$_=$count{$_}" } sort keys %count), md5_hex($text));

# Deep recursion and references.
sub tree { my $d = shift; return $d ? [ tree($d - 1), tree($d - 1), $d ] : [$d] }
sub walk { my $n = shift; my $s = $n->[-1]; $s += walk($_) for grep { ref } @$n; $s }
my $tree = tree(17);
out('tree', walk($tree));
undef $tree;
print "perl workload done\n";
