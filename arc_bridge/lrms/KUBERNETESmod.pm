package KUBERNETESmod;

# ARC infoprovider module for lrms = kubernetes. It asks arkd, which answers from the caches of
# its Kubernetes watch, so the infosys never talks to the API server itself.

require Exporter;
our @ISA = qw(Exporter);
our @EXPORT_OK = qw(get_lrms_info get_lrms_options_schema);

use strict;
use File::Basename qw(dirname);
use JSON::PP;
use LogUtils;

our $log = LogUtils->getLogger(__PACKAGE__);

sub get_lrms_options_schema {
    return {
        'queues' => { '*' => { 'users' => [ '' ] } },
        'jobs' => [ '' ],
    };
}

# The client finds arkd's socket as the LRMS scripts do: [custom:kubernetes] socket in $ARC_CONFIG,
# which A-REX passes to the infoprovider, else /run/arkd/arkd.sock.
sub arkd_info {
    my $dir = dirname(__FILE__);
    local $ENV{PYTHONPATH} = "$dir/ark";
    my $out = `/usr/bin/python3 -S -P -m arc_bridge.client info`;
    if ($? != 0) {
        $log->warning("arkd did not answer: $out");
        return undef;
    }
    return decode_json($out);
}

sub get_lrms_info(\%) {
    my $options = shift;
    my $info = arkd_info() || { totalcpus => 0, usedcpus => 0, queuedcpus => 0, runningjobs => 0,
                                queuedjobs => 0, queues => {}, jobs => {}, nodes => {} };
    my $lrms = {};
    $lrms->{cluster} = {
        lrms_type => 'kubernetes',
        lrms_version => '1.20',
        totalcpus => $info->{totalcpus},
        usedcpus => $info->{usedcpus},
        queuedcpus => $info->{queuedcpus},
        runningjobs => $info->{runningjobs},
        queuedjobs => $info->{queuedjobs},
        cpudistribution => join(' ', map { "$_->{slots}cpu:1" } values %{$info->{nodes}}),
    };
    for my $qname (keys %{$options->{queues}}) {
        my $q = $info->{queues}{$qname} || { totalcpus => 0, freecpus => 0, running => 0, queued => 0, nodes => [],
                                             vo_freecpus => {} };
        # A user may start what her VO's quota still allows of the queue's free CPUs.
        my %users;
        for my $user (@{$options->{queues}{$qname}{users} || []}) {
            my $vo = $info->{users}{$user};
            my $free = defined $vo && defined $q->{vo_freecpus}{$vo} ? $q->{vo_freecpus}{$vo} : $q->{freecpus};
            $users{$user} = { freecpus => { $free => 0 }, queuelength => $q->{queued} };
        }
        $lrms->{queues}{$qname} = {
            status => $q->{freecpus},
            maxrunning => $q->{totalcpus},
            maxwalltime => $q->{maxwalltime},
            running => $q->{running},
            queued => $q->{queued},
            totalcpus => $q->{totalcpus},
            nodes => $q->{nodes},
            users => \%users,
        };
    }
    for my $id (@{$options->{jobs} || []}) {
        my $j = $info->{jobs}{$id};
        # A job arkd no longer supervises has ended; arkd has recorded its result.
        $lrms->{jobs}{$id} = $j ? { status => $j->{status}, cpus => $j->{cpus}, mem => $j->{mem},
                                    nodes => $j->{nodes} }
                                : { status => 'EXECUTED' };
    }
    for my $name (keys %{$info->{nodes}}) {
        my $n = $info->{nodes}{$name};
        # An execution environment per queue, from these: platform, CPUs, memory (MB, as ARC's
        # own backends give it) and OS family of its nodes.
        $lrms->{nodes}{$name} = { isavailable => $n->{isavailable} ? 1 : 0, isfree => $n->{isfree} ? 1 : 0,
                                  slots => $n->{slots}, lcpus => $n->{lcpus}, pmem => $n->{pmem},
                                  sysname => $n->{sysname}, release => $n->{release}, machine => $n->{machine} };
    }
    return $lrms;
}

1;
