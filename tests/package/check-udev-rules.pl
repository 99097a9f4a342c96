#!/usr/bin/perl
# A strict syntax check of a udev rules file, after udev(7), for systems whose udevadm has no
# `verify` (before systemd 253), plus what qscd-agent's rules must do:
#   check-udev-rules.pl RULES VID:PID...
# Every key, attribute and operator must be one udev knows for that key; every value quoted;
# every GOTO must reach a LABEL further down; each VID:PID given must be matched by exactly one
# rule (lower-case hex, as sysfs spells it), and that rule must reach the rule that tags the
# device for uaccess and systemd and wants qscd-agent-watch.service.
use strict;
use warnings;

my ($file, @ids) = @ARGV;
die "usage: $0 RULES VID:PID...\n" unless defined $file && @ids;
open(my $in, '<', $file) or die "$file: $!\n";

# key => [takes {attr}: 0 no, 1 required, 2 optional; operators allowed]
my %match = map { $_ => 1 } qw(== !=);
my %assign = map { $_ => 1 } qw(= += -= :=);
my %both = (%match, %assign);
my %keys = (
  ACTION => [0, \%match], DEVPATH => [0, \%match], KERNEL => [0, \%match],
  KERNELS => [0, \%match], SUBSYSTEM => [0, \%match], SUBSYSTEMS => [0, \%match],
  DRIVER => [0, \%match], DRIVERS => [0, \%match], ATTRS => [1, \%match],
  TAGS => [0, \%match], TEST => [2, \%match], PROGRAM => [0, \%match],
  RESULT => [0, \%match], CONST => [1, \%match],
  NAME => [0, \%both], SYMLINK => [0, \%both], ATTR => [1, \%both], SYSCTL => [1, \%both],
  ENV => [1, \%both], TAG => [0, \%both],
  OWNER => [0, \%assign], GROUP => [0, \%assign], MODE => [0, \%assign],
  SECLABEL => [1, \%assign], RUN => [2, \%assign], IMPORT => [1, \%assign],
  OPTIONS => [0, \%assign], LABEL => [0, {'=' => 1}], GOTO => [0, {'=' => 1}],
);

my @errors;
my @rules;    # { line, pairs => [[key, attr, op, value]...] }
my $text = '';
my $start;
while (my $line = <$in>) {
  chomp $line;
  $start //= $.;
  if ($line =~ s/\\$//) { $text .= $line; next; }
  $text .= $line;
  my $n = $start;
  ($start, my $rule) = (undef, $text);
  $text = '';
  next if $rule =~ /^\s*(#.*)?$/;
  my @pairs;
  my $rest = $rule;
  while (1) {
    if ($rest !~ s/^\s*([A-Z_]+)(?:\{([^{}"]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*//) {
      push @errors, "$file:$n: cannot read a key=\"value\" pair at: $rest";
      last;
    }
    my ($key, $attr, $op, $value) = ($1, $2, $3, $4);
    my $spec = $keys{$key};
    if (!$spec) {
      push @errors, "$file:$n: unknown key $key";
    } else {
      my ($takes, $ops) = @$spec;
      push @errors, "$file:$n: $key needs {attribute}" if $takes == 1 && !defined $attr;
      push @errors, "$file:$n: $key takes no {attribute}" if $takes == 0 && defined $attr;
      push @errors, "$file:$n: $key does not take $op" unless $ops->{$op};
    }
    push @pairs, [$key, $attr // '', $op, $value];
    last if $rest eq '';
    if ($rest !~ s/^,//) {
      push @errors, "$file:$n: expected a comma at: $rest";
      last;
    }
    push @errors, "$file:$n: trailing comma" if $rest =~ /^\s*$/;
  }
  push @rules, { line => $n, pairs => \@pairs };
}
push @errors, "$file: ends inside a continued line" if $text ne '';

# GOTO targets: a LABEL after the GOTO (udev only jumps forward), labels unique.
my %label_at;
for my $i (0 .. $#rules) {
  for my $p (@{$rules[$i]{pairs}}) {
    next unless $p->[0] eq 'LABEL';
    push @errors, "$file:$rules[$i]{line}: LABEL $p->[3] defined twice" if exists $label_at{$p->[3]};
    $label_at{$p->[3]} = $i;
  }
}
for my $i (0 .. $#rules) {
  for my $p (@{$rules[$i]{pairs}}) {
    next unless $p->[0] eq 'GOTO';
    my $to = $label_at{$p->[3]};
    push @errors, "$file:$rules[$i]{line}: GOTO $p->[3] has no LABEL after it"
      unless defined $to && $to > $i;
  }
}

# The token IDs: each matched by exactly one rule, and that rule leads to the actions.
my $acts = sub {
  my ($r) = @_;
  my %have;
  for my $p (@{$r->{pairs}}) {
    $have{tag_uaccess} = 1 if $p->[0] eq 'TAG' && $p->[2] eq '+=' && $p->[3] eq 'uaccess';
    $have{tag_systemd} = 1 if $p->[0] eq 'TAG' && $p->[2] eq '+=' && $p->[3] eq 'systemd';
    $have{wants} = 1 if $p->[0] eq 'ENV' && $p->[1] eq 'SYSTEMD_WANTS' && $p->[2] =~ /^\+?=$/
      && $p->[3] =~ /(^|\s)qscd-agent-watch\.service(\s|$)/;
  }
  return $have{tag_uaccess} && $have{tag_systemd} && $have{wants};
};
my %seen;
for my $i (0 .. $#rules) {
  my $r = $rules[$i];
  my %m = map { ($_->[0] eq 'ATTR' || $_->[0] eq 'ATTRS') && $_->[2] eq '==' ? ($_->[1] => $_->[3]) : () }
    @{$r->{pairs}};
  next unless exists $m{idVendor} || exists $m{idProduct};
  my $id = ($m{idVendor} // '?') . ':' . ($m{idProduct} // '?');
  push @errors, "$file:$r->{line}: $id is not four lower-case hex digits each, as sysfs writes them"
    unless $id =~ /^[0-9a-f]{4}:[0-9a-f]{4}$/;
  push @{$seen{$id}}, $r->{line};
  # The rule acts itself, or jumps to a LABEL followed by unconditional rules that do.
  my $ok = $acts->($r);
  for my $p (@{$r->{pairs}}) {
    next unless $p->[0] eq 'GOTO' && defined $label_at{$p->[3]};
    for my $k ($label_at{$p->[3]} .. $#rules) {
      my @keys = map { $_->[0] } @{$rules[$k]{pairs}};
      last if grep { $_ eq 'GOTO' || (exists $keys{$_} && $keys{$_}[1] == \%match) } @keys;
      last if $k > $label_at{$p->[3]} && grep { $_ eq 'LABEL' } @keys;
      $ok ||= $acts->($rules[$k]);
    }
  }
  push @errors, "$file:$r->{line}: $id does not lead to TAG+=\"uaccess\", TAG+=\"systemd\" and "
    . "ENV{SYSTEMD_WANTS}+=\"qscd-agent-watch.service\"" unless $ok;
}
for my $want (@ids) {
  my $id = lc $want;
  my $lines = $seen{$id} // [];
  push @errors, "$file: $id is matched by " . scalar(@$lines) . " rules (lines @$lines), not one"
    unless @$lines == 1;
}
for my $id (sort keys %seen) {
  push @errors, "$file: $id is matched twice (lines @{$seen{$id}})" if @{$seen{$id}} > 1
    && !grep { lc $_ eq $id } @ids;
}

if (@errors) {
  print STDERR "$_\n" for @errors;
  exit 1;
}
printf "%s: %d rules, %d token ids, each once\n", $file, scalar @rules, scalar @ids;
