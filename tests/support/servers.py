"""Servers a learner would start in their instance, for the tests and benchmarks of ports.

The instance has Perl (Debian's perl-base), so a WebSocket echo server needs
nothing pulled: `WEBSOCKET_ECHO` serves RFC 6455 on the port given as its
argument, a process per connection, echoing every text and binary message
and answering pings.
"""

WEBSOCKET_ECHO = r"""
use strict; use IO::Socket::INET; use Digest::SHA qw(sha1); use MIME::Base64;
$SIG{CHLD} = 'IGNORE';
my $server = IO::Socket::INET->new(LocalPort => $ARGV[0], Listen => 64, ReuseAddr => 1) or die "listen: $!";
while (1) {
    my $c = $server->accept or next;
    if (fork) { close $c; next }
    $c->autoflush(1);
    setsockopt($c, 6, 1, 1);  # TCP_NODELAY
    my $request = '';
    while (my $line = <$c>) { $request .= $line; last if $line eq "\r\n" }
    my ($key) = $request =~ /Sec-WebSocket-Key:\s*(\S+)/i or exit 0;
    my $accept = encode_base64(sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');
    print $c "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Accept: $accept\r\n\r\n";
    while (read($c, my $head, 2) == 2) {
        my ($first, $second) = unpack 'CC', $head;
        my $length = $second & 127;
        if ($length == 126) { read $c, my $l, 2; $length = unpack 'n', $l }
        elsif ($length == 127) { read $c, my $l, 8; $length = unpack 'Q>', $l }
        my $mask = ''; read $c, $mask, 4 if $second & 128;
        my $data = ''; read $c, $data, $length if $length;
        $data ^= substr($mask x (1 + int($length / 4)), 0, $length) if $mask ne '';
        my $op = $first & 15;
        last if $op == 8;
        $op = 10 if $op == 9;
        my $frame = $length < 126 ? pack('CC', 128 | $op, $length)
            : $length < 65536 ? pack('CCn', 128 | $op, 126, $length) : pack('CCQ>', 128 | $op, 127, $length);
        print $c $frame . $data;
    }
    exit 0;
}
"""


def start_websocket_echo(container, port: int, user: str) -> None:
    """Start the echo server in a running instance (docker-py container), in the background."""
    container.exec_run(["setsid", "perl", "-e", WEBSOCKET_ECHO, str(port)], user=user, detach=True)
