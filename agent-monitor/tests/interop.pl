#!/usr/bin/perl
# Perl's RPC::XML::Client against agent-monitor, as SWAMP's Perl tools called it: members
# omitted rather than nil, numbers smart-encoded. Usage: interop.pl URL STATE_DIR
use strict;
use warnings;
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(sha256_hex);
use RPC::XML;
use RPC::XML::Client;

my ($url, $state) = @ARGV;
$RPC::XML::ENCODING = 'utf-8';

sub secret {
    my ($role) = @_;
    open(my $f, '<', "$state/secrets/$role.secret") or die "no $role secret: $!";
    my $s = <$f>;
    chomp $s;
    return $s;
}

sub client {
    my ($auth) = @_;
    my $c = RPC::XML::Client->new($url);
    $c->useragent->default_header('Authorization' => $auth) if $auth;
    return $c;
}

sub call {
    my ($c, $method, @args) = @_;
    my $r = $c->send_request($method, @args);
    die "$method: transport error: $r\n" unless ref $r;
    die "$method: fault " . $r->code . ': ' . $r->string . "\n" if $r->is_fault;
    return $r->value;
}

sub fault_code {
    my ($c, $method, @args) = @_;
    my $r = $c->send_request($method, @args);
    return ref $r && $r->is_fault ? $r->code : -1;
}

my $launcher = client('Basic ' . encode_base64('launcher:' . secret('launcher'), ''));
my $admin = client('Basic ' . encode_base64('admin:' . secret('admin'), ''));

# A project named by digits only: Perl sends it as <int>.
my $r = call($launcher, 'agentMonitor.launchViewer', { project => '2024', viewer => 'CodeDX' });
die "not launched\n" unless $r->{launched} && $r->{state} eq 'launching';
my $gen = $r->{generation};

my $a = call($launcher, 'agentMonitor.isViewerAvailable', 'CodeDX', '2024');
die "ready too early\n" unless $a->{ready} == 0;

# The job reports with its token from the job file.
my $jobfile = "$state/jobs/g$gen.json";
for (1 .. 100) { last if -e $jobfile; select(undef, undef, undef, 0.05); }
open(my $jf, '<', $jobfile) or die "no job file: $!";
my ($token) = join('', <$jf>) =~ /"job_token":\s*"([^"]+)"/;
my $job = client("Bearer $token");
my %ref = (project => '2024', viewer => 'CodeDX', generation => $gen);
call($job, 'agentMonitor.setViewerState', { %ref, state => 'ready', ipaddress => '127.0.0.1:7777' });
die "heartbeat\n" unless call($job, 'agentMonitor.heartbeat', {%ref})->{continue};
my $db = "perl viewer database";
call($job, 'agentMonitor.storeviewer', { %ref, viewerdb => RPC::XML::base64->new($db), checksum => sha256_hex($db) });

$a = call($launcher, 'agentMonitor.isViewerAvailable', 'CodeDX', '2024');
die "not ready\n" unless $a->{ready} == 1 && $a->{address} eq '127.0.0.1:7777' && length($a->{apikey}) == 64;
my $st = call($launcher, 'agentMonitor.viewerStatus', { project => '2024', viewer => 'CodeDX' });
die "history\n" unless scalar(@{ $st->{history} }) == 2;
my $list = call($admin, 'agentMonitor.listViewers');
die "list\n" unless scalar(@$list) == 1;
call($admin, 'agentMonitor.abortViewer', { project => '2024', viewer => 'CodeDX' });

die "launcher may not abort\n" unless fault_code($launcher, 'agentMonitor.abortViewer', { project => '2024', viewer => 'CodeDX' }) == 8;
die "bad name\n" unless fault_code($launcher, 'agentMonitor.launchViewer', { project => 'a b', viewer => 'CodeDX' }) == 2;
die "no creds\n" unless fault_code(client(undef), 'server.version') == 8;
print "perl interop ok\n";
