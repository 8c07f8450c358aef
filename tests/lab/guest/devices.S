/* devices.S - disk and NIC code for counter-guest (ring 3, included by guest.S) */

/* ---------------- ATA disk (primary channel, LBA28) ----------------
 * Default: bus-master DMA through the PCI IDE function (PIIX), ~12 port
 * accesses per command.  Flag F_DISK_PIO (or no PCI IDE found): classic
 * PIO, rep insw/outsw (256 word transfers = 256 I/O exits per sector).
 *
 * The record (sector disk_lba), little-endian:
 *   0x00 "PGDISK01"  0x08 counter  0x10 period number  0x18 TSC
 *   0x20 write sequence number (1, 2, ... continuing the sequence found on
 *        the disk at boot)  0x28.. zero
 * DISKBUF holds the last record written: it is both the DMA source and the
 * guest's own idea of what the disk holds.
 *
 * Boot: read the record sector once, print "D <counter>" ("D none").
 * Every I/O cycle (io_every periods):
 *   1. read the record sector back into RDBUF and compare all 512 bytes
 *      with DISKBUF (skipped while DISKBUF is not known to be on the disk:
 *      before the first write completes, after a failed write).  A
 *      difference prints "DMISMATCH want <n> got <m>" ("got garbage" when
 *      the magic is wrong) and counts in ST_DISK_BAD.  The guest may be
 *      resumed from a checkpoint (RAM + devices + disk) on another
 *      machine: a disk older or newer than its RAM shows here, unless
 *      the checkpoint fell between the read-back's start and the write's
 *      (the read's latency and ~10 port accesses): the write then covers
 *      the difference before any read sees it.
 *   2. write the new record;
 *   3. with disk_sectors > 1, write disk_sectors-1 filler sectors with one
 *      command, rotating through LBA FILL_FIRST..disk_lba-1 (never the boot
 *      code, the parameters or the record).
 * The commands never block the counting: V_DSTATE says which one runs,
 * disk_poll (main loop, every POLL_US while one runs) sees it complete and
 * issues the next.  A cycle due while the previous one still runs is
 * skipped (disk_busy).  Waiting instead would let a disk stalled by
 * replication stall the C lines, whose gaps measure a failover.
 * Latency: TSC from issuing the record write to seeing the cycle's last
 * write (record or filler) complete, read-back excluded, resolution
 * POLL_US; one sample per ST_DISK_OK in ST_DISK_LAT_SUM/MAX. */
        .set PRD_REC,    PRDS          /* record write: DISKBUF, 512 bytes */
        .set PRD_RD,     PRDS+8        /* read-back: RDBUF, 512 bytes */
        .set PRD_FILL,   PRDS+16       /* filler: FILLBUF, up to 2 entries */
        .set FILL_FIRST, 1024
        .set POLL_US,    20
        .set DS_IDLE,    0
        .set DS_BOOT,    1             /* boot read (D line) */
        .set DS_CHECK,   2             /* read-back before a write */
        .set DS_RECORD,  3
        .set DS_FILL,    4             /* states above DS_CHECK write */
        .set DISK_MAGIC, 0x31304B5349444750     /* "PGDISK01" */

disk_init:
        mov     $0x3F6, %dx             /* device control: nIEN */
        mov     $0x02, %al
        out     %al, %dx
        mov     $DISKBUF, %edi          /* zero DISKBUF and RDBUF */
        mov     $128, %ecx
        xor     %eax, %eax
        rep stosq
        movq    $0, STATUS+V_BMBASE
        mov     $0x1F7, %dx
        in      %dx, %al
        cmp     $0xFF, %al
        jne     1f
        call    lb_begin                /* floating bus: no controller/drive */
        mov     $s_diskerr, %esi
        call    lb_str
        call    lb_flush
        andq    $~F_DISK, STATUS+V_FLAGS
        ret
1:      testq   $F_DISK_PIO, STATUS+V_FLAGS
        jnz     3f
        call    pci_find_ide            /* eax = config address or 0 */
        test    %eax, %eax
        jz      3f
        mov     %eax, %r10d
        add     $0x20, %eax             /* BAR4: bus master I/O base */
        mov     $0xCF8, %dx
        out     %eax, %dx
        mov     $0xCFC, %dx
        in      %dx, %eax
        test    $1, %al                 /* must be an I/O BAR */
        jz      3f
        and     $0xFFFC, %eax
        jz      3f
        mov     %rax, STATUS+V_BMBASE
        lea     4(%r10), %eax           /* command: I/O space + bus master */
        mov     $0xCF8, %dx
        out     %eax, %dx
        mov     $0xCFC, %dx
        in      %dx, %ax
        or      $0x05, %ax
        out     %ax, %dx
        mov     STATUS+V_BMBASE, %rdx
        xor     %al, %al
        out     %al, %dx                /* BM command: stopped */
3:      movl    $DISKBUF, PRD_REC       /* one entry each, end of table */
        movl    $0x80000200, PRD_REC+4
        movl    $RDBUF, PRD_RD
        movl    $0x80000200, PRD_RD+4
        mov     STATUS+ST_TSC_HZ, %rax
        xor     %edx, %edx
        mov     $1000000 / POLL_US, %ecx
        div     %rcx
        test    %rax, %rax
        jnz     1f
        inc     %eax
1:      mov     %rax, STATUS+V_POLL_TICKS
        /* filler sectors per cycle: disk_sectors - 1, at most 255 (one
         * command) and at most the region below the record */
        mov     PARAMS+P_DISK_SECTORS, %eax
        test    %eax, %eax
        jnz     1f
        inc     %eax
1:      cmp     $256, %eax
        jbe     2f
        mov     $256, %eax
2:      dec     %eax
        mov     STATUS+V_LBA, %rcx
        sub     $FILL_FIRST, %rcx
        jae     1f
        xor     %ecx, %ecx
1:      cmp     %rcx, %rax
        jbe     2f
        mov     %rcx, %rax
2:      mov     %rax, STATUS+V_FILL_N
        movq    $FILL_FIRST, STATUS+V_FILL_LBA
        test    %rax, %rax
        jz      5f
        /* never all zeros: what a replicating disk stores must be data */
        mov     %rax, %rcx
        shl     $6, %rcx                /* qwords */
        mov     $FILLBUF, %edi
        mov     $0x9E3779B97F4A7C15, %r8
1:      mov     %rdi, %rax
        imul    %r8, %rax
        stosq
        dec     %rcx
        jnz     1b
        mov     STATUS+V_FILL_N, %rax   /* PRDs: <= 64 KiB each, 0 = 64 KiB */
        shl     $9, %eax
        movl    $FILLBUF, PRD_FILL
        cmp     $0x10000, %eax
        ja      2f
        and     $0xFFFF, %eax
        or      $0x80000000, %eax
        mov     %eax, PRD_FILL+4
        jmp     5f
2:      movl    $0, PRD_FILL+4
        movl    $FILLBUF+0x10000, PRD_FILL+8
        sub     $0x10000, %eax
        or      $0x80000000, %eax
        mov     %eax, PRD_FILL+12
5:      call    lb_begin
        mov     $s_d_mode, %esi
        call    lb_str
        mov     $s_pio, %esi
        mov     STATUS+V_BMBASE, %rax
        test    %rax, %rax
        jz      4f
        mov     $s_dma, %esi
4:      call    lb_str
        mov     $s_d_bm, %esi
        mov     STATUS+V_BMBASE, %rax
        call    lb_kvh
        mov     $s_d_sect, %esi
        mov     STATUS+V_FILL_N, %rax
        inc     %rax
        call    lb_kv
        call    lb_flush
        movq    $DS_BOOT, STATUS+V_DSTATE
        jmp     disk_read

/* scan PCI bus 0 for class 01:01 (IDE); return config address in eax */
pci_find_ide:
        mov     $0x80000000, %r8d
1:      mov     %r8d, %eax
        mov     $0xCF8, %dx
        out     %eax, %dx
        mov     $0xCFC, %dx
        in      %dx, %eax
        cmp     $0xFFFF, %ax            /* no function here */
        je      3f
        lea     8(%r8), %eax
        mov     $0xCF8, %dx
        out     %eax, %dx
        mov     $0xCFC, %dx
        in      %dx, %eax
        shr     $16, %eax
        cmp     $0x0101, %eax
        jne     2f
        mov     %r8d, %eax
        ret
2:      add     $0x100, %r8d            /* next function */
        jmp     4f
3:      test    $0x700, %r8d            /* function 0 absent: skip device */
        jnz     2b
        add     $0x800, %r8d
4:      cmp     $0x80010000, %r8d
        jb      1b
        xor     %eax, %eax
        ret

/* ---------------- virtio: reset what the firmware left running ----------------
 * SeaBIOS boots a virtio-blk disk with its own driver: it sets up a
 * virtqueue in RAM (near the top of memory, inside the dirtied region),
 * reads the boot sectors and hands over with the device live (DRIVER_OK).
 * This guest has no virtio driver and overwrites that memory.  QEMU looks
 * at a live virtqueue again whenever it (re)starts the device's ioeventfd:
 * every cont after a stop (each checkpoint epoch), and a migration
 * destination's start.  The stale ring then yields garbage descriptors
 * ("virtio: bogus descriptor or out of resources") or SeaBIOS's own, and
 * disk sectors land over this guest's page tables: it triple-faults and
 * reboots.  A real OS's virtio driver resets the device before using it;
 * this guest resets, at boot, every virtio device (vendor 0x1AF4) on PCI
 * bus 0: status register (legacy BAR0 + 0x12) <- 0, which stops the device
 * and drops its queues.  One line per device:
 *   V virtio reset dev=<d> fn=<f> device=0x<id> io=0x<bar0> status=0x<before> now=0x<after>
 *   V virtio NOT reset (no I/O BAR0) dev=<d> fn=<f> device=0x<id>
 * The second form is a modern-only (non-transitional) device: its registers
 * are in memory BARs above the 1 GiB this guest maps.
 * Clobbers rax rcx rdx rsi rdi r8-r11. */
        .set VIRTIO_VENDOR, 0x1AF4
        .set VIRTIO_PCI_STATUS, 0x12   /* legacy header: device status, u8 */
virtio_reset_all:
        mov     $0x80000000, %r9d
1:      mov     %r9d, %eax
        mov     $0xCF8, %dx
        out     %eax, %dx
        mov     $0xCFC, %dx
        in      %dx, %eax
        cmp     $0xFFFF, %ax            /* no function here */
        je      3f
        cmp     $VIRTIO_VENDOR, %ax
        jne     2f
        shr     $16, %eax
        mov     %eax, %r10d             /* device ID */
        call    virtio_reset_one
2:      add     $0x100, %r9d            /* next function */
        jmp     4f
3:      test    $0x700, %r9d            /* function 0 absent: skip device */
        jnz     2b
        add     $0x800, %r9d
4:      cmp     $0x80010000, %r9d
        jb      1b
        ret

/* r9 = config address (function), r10 = device ID */
virtio_reset_one:
        lea     0x10(%r9), %eax         /* BAR0 */
        mov     $0xCF8, %dx
        out     %eax, %dx
        mov     $0xCFC, %dx
        in      %dx, %eax
        test    $1, %al                 /* an I/O BAR: legacy interface */
        jz      8f
        and     $0xFFFC, %eax
        jz      8f
        mov     %eax, %r11d
        lea     4(%r9), %eax            /* command: I/O space on */
        mov     $0xCF8, %dx
        out     %eax, %dx
        mov     $0xCFC, %dx
        in      %dx, %ax
        or      $0x01, %ax
        out     %ax, %dx
        lea     VIRTIO_PCI_STATUS(%r11), %edx
        in      %dx, %al
        movzbl  %al, %eax
        shl     $32, %rax               /* r11 = status before << 32 | base */
        or      %rax, %r11
        xor     %al, %al
        out     %al, %dx                /* 0: reset */
        call    virtio_line
        mov     $s_v_io, %esi
        mov     %r11d, %eax
        call    lb_kvh
        mov     $s_v_st, %esi
        mov     %r11, %rax
        shr     $32, %rax
        call    lb_kvh
        lea     VIRTIO_PCI_STATUS(%r11), %edx
        in      %dx, %al                /* 0 once reset */
        movzbl  %al, %eax
        mov     $s_v_now, %esi
        call    lb_kvh
        jmp     lb_flush
8:      call    lb_begin
        mov     $s_v_noio, %esi
        call    lb_str
        call    virtio_where
        jmp     lb_flush

virtio_line:                    /* "V virtio reset dev=.. fn=.. device=0x.." */
        call    lb_begin
        mov     $s_v_reset, %esi
        call    lb_str
virtio_where:
        mov     $s_v_dev, %esi
        mov     %r9d, %eax
        shr     $11, %eax
        and     $31, %eax
        call    lb_kv
        mov     $s_v_fn, %esi
        mov     %r9d, %eax
        shr     $8, %eax
        and     $7, %eax
        call    lb_kv
        mov     $s_v_id, %esi
        mov     %r10d, %eax
        jmp     lb_kvh

/* program the LBA28 task file: eax = LBA, cl = sector count, esi = command */
ata_issue:
        mov     %eax, %r8d
        mov     PARAMS+P_DISK_DRIVE, %eax
        and     $1, %eax
        shl     $4, %eax
        or      $0xE0, %eax
        mov     %r8d, %edx
        shr     $24, %edx
        and     $0x0F, %edx
        or      %edx, %eax
        mov     $0x1F6, %dx
        out     %al, %dx                /* drive/head + LBA 27:24 */
        mov     $0x1F2, %dx
        mov     %cl, %al
        out     %al, %dx                /* sector count */
        mov     %r8d, %eax
        inc     %dx
        out     %al, %dx                /* LBA 7:0 */
        shr     $8, %eax
        inc     %dx
        out     %al, %dx                /* LBA 15:8 */
        shr     $8, %eax
        inc     %dx
        out     %al, %dx                /* LBA 23:16 */
        mov     $0x1F7, %dx
        mov     %esi, %eax
        out     %al, %dx
        ret

/* start a transfer: eax = LBA, ecx = sectors (1..255), r9d = 0 read /
 * 1 write, r10 = buffer (PIO), r11 = PRD table (DMA).  The caller has set
 * V_DSTATE; disk_poll takes it from here. */
disk_cmd:
        movq    $0, STATUS+V_NEXT_POLL  /* first look at the next TSC check */
        mov     STATUS+V_BMBASE, %rdx
        test    %rdx, %rdx
        jz      2f
        mov     %eax, %r8d
        add     $2, %edx
        mov     $0x06, %al
        out     %al, %dx                /* clear BM irq/error */
        add     $2, %edx
        mov     %r11d, %eax
        out     %eax, %dx               /* PRD table address */
        mov     %r8d, %eax
        mov     $0xC8, %esi             /* READ DMA */
        test    %r9d, %r9d
        jz      1f
        mov     $0xCA, %esi             /* WRITE DMA */
1:      call    ata_issue
        mov     STATUS+V_BMBASE, %rdx
        mov     $0x09, %al              /* start, device -> memory */
        test    %r9d, %r9d
        jz      1f
        mov     $0x01, %al              /* start, memory -> device */
1:      out     %al, %dx
        ret
2:      mov     %rcx, STATUS+V_PIO_LEFT
        mov     %r10, STATUS+V_PIO_PTR
        mov     $0x20, %esi             /* READ SECTORS */
        test    %r9d, %r9d
        jz      ata_issue
        mov     $0x30, %esi             /* WRITE SECTORS */
        jmp     ata_issue

disk_read:                      /* the record sector into RDBUF */
        mov     STATUS+V_LBA, %rax
        mov     $1, %ecx
        xor     %r9d, %r9d
        mov     $RDBUF, %r10d
        mov     $PRD_RD, %r11d
        jmp     disk_cmd

/* period_work, every io_every periods */
disk_cycle:
        cmpq    $DS_IDLE, STATUS+V_DSTATE
        je      1f
        incq    STATUS+ST_DISK_BUSY     /* the previous cycle still runs */
        ret
1:      cmpq    $0, STATUS+V_REC_VALID
        je      disk_write_record
        movq    $DS_CHECK, STATUS+V_DSTATE
        jmp     disk_read

disk_write_record:
        mov     $DISK_MAGIC, %rax
        mov     %rax, DISKBUF
        mov     %r15, DISKBUF+8         /* counter */
        mov     STATUS+ST_PERIODS, %rax
        mov     %rax, DISKBUF+16
        incq    STATUS+ST_DISK_SEQ
        mov     STATUS+ST_DISK_SEQ, %rax
        mov     %rax, DISKBUF+32
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, DISKBUF+24
        mov     %rax, STATUS+V_IO_T0
        movq    $0, STATUS+V_REC_VALID  /* on the disk only once it completes */
        movq    $DS_RECORD, STATUS+V_DSTATE
        mov     STATUS+V_LBA, %rax
        mov     $1, %ecx
        mov     $1, %r9d
        mov     $DISKBUF, %r10d
        mov     $PRD_REC, %r11d
        jmp     disk_cmd

disk_write_fill:
        mov     $0x31304C4C49464750, %rax   /* "PGFILL01" */
        mov     %rax, FILLBUF
        mov     %r15, FILLBUF+8
        mov     STATUS+ST_DISK_SEQ, %rax
        mov     %rax, FILLBUF+16
        mov     STATUS+V_FILL_LBA, %rax
        mov     %rax, FILLBUF+24
        movq    $DS_FILL, STATUS+V_DSTATE
        mov     STATUS+V_FILL_N, %rcx
        lea     (%rax,%rcx), %rdx       /* next start */
        lea     (%rdx,%rcx), %r8
        cmp     STATUS+V_LBA, %r8
        jbe     1f
        mov     $FILL_FIRST, %edx       /* the next would reach the record */
1:      mov     %rdx, STATUS+V_FILL_LBA
        mov     $1, %r9d
        mov     $FILLBUF, %r10d
        mov     $PRD_FILL, %r11d
        jmp     disk_cmd

/* main loop, r13 = now, V_DSTATE != idle.  Clobbers rax rcx rdx rsi rdi
 * r8-r11. */
disk_poll:
        mov     STATUS+V_BMBASE, %rdx
        test    %rdx, %rdx
        jz      5f
        add     $2, %edx
        in      %dx, %al                /* BM status */
        test    $0x01, %al              /* active */
        jnz     8f
        mov     %eax, %r10d
        mov     $0x1F7, %dx
        in      %dx, %al
        test    $0x80, %al              /* BSY */
        jnz     8f
        mov     %eax, %r11d
        mov     STATUS+V_BMBASE, %rdx
        xor     %al, %al
        out     %al, %dx                /* BM stop */
        test    $0x02, %r10b            /* BM error */
        jnz     disk_failed
        test    $0x01, %r11b            /* ATA ERR */
        jnz     disk_failed
        jmp     disk_done
        /* PIO: move a sector whenever the drive asks for one (DRQ) */
5:      mov     $0x1F7, %dx
        in      %dx, %al
        test    $0x80, %al              /* BSY */
        jnz     8f
        test    $0x01, %al              /* ERR */
        jnz     disk_failed
        test    $0x08, %al              /* DRQ */
        jz      7f
        cmpq    $0, STATUS+V_PIO_LEFT
        je      disk_failed             /* more sectors than asked for */
        decq    STATUS+V_PIO_LEFT
        mov     $256, %ecx
        mov     $0x1F0, %dx
        cmpq    $DS_CHECK, STATUS+V_DSTATE
        ja      6f
        mov     STATUS+V_PIO_PTR, %rdi
        rep insw
        mov     %rdi, STATUS+V_PIO_PTR
        jmp     5b
6:      mov     STATUS+V_PIO_PTR, %rsi
        rep outsw
        mov     %rsi, STATUS+V_PIO_PTR
        jmp     5b
7:      cmpq    $0, STATUS+V_PIO_LEFT
        jne     disk_failed             /* ended short */
        jmp     disk_done
8:      mov     %r13, %rax
        add     STATUS+V_POLL_TICKS, %rax
        mov     %rax, STATUS+V_NEXT_POLL
        ret

/* the running command completed without error: next step */
disk_done:
        mov     STATUS+V_DSTATE, %rax
        movq    $DS_IDLE, STATUS+V_DSTATE
        cmp     $DS_CHECK, %eax
        jb      disk_boot_read
        je      disk_check
        cmp     $DS_RECORD, %eax
        je      1f
        mov     STATUS+V_FILL_N, %rax   /* DS_FILL */
        shl     $9, %rax
        add     %rax, STATUS+ST_DISK_BYTES
        jmp     2f
1:      movq    $1, STATUS+V_REC_VALID
        addq    $512, STATUS+ST_DISK_BYTES
        cmpq    $0, STATUS+V_FILL_N
        jne     disk_write_fill
2:      rdtsc                           /* the cycle's writes are done */
        shl     $32, %rdx
        or      %rdx, %rax
        sub     STATUS+V_IO_T0, %rax
        add     %rax, STATUS+ST_DISK_LAT_SUM
        cmp     STATUS+ST_DISK_LAT_MAX, %rax
        jbe     3f
        mov     %rax, STATUS+ST_DISK_LAT_MAX
3:      incq    STATUS+ST_DISK_OK
        ret

disk_failed:
        incq    STATUS+ST_DISK_ERR
        mov     STATUS+V_DSTATE, %rax
        movq    $DS_IDLE, STATUS+V_DSTATE
        cmp     $DS_CHECK, %eax
        jb      disk_boot_none
        je      disk_write_record       /* cannot verify: write all the same */
        ret                             /* a failed record write left V_REC_VALID 0 */

disk_boot_read:
        mov     RDBUF, %rax
        mov     $DISK_MAGIC, %rcx
        cmp     %rcx, %rax
        jne     disk_boot_none
        mov     RDBUF+32, %rax          /* continue the disk's sequence */
        mov     %rax, STATUS+ST_DISK_SEQ
        call    lb_begin
        movw    $0x2044, (%rdi)         /* "D " */
        add     $2, %rdi
        mov     RDBUF+8, %rax
        call    lb_dec
        jmp     lb_flush
disk_boot_none:
        call    lb_begin
        mov     $s_d_none, %esi
        call    lb_str
        jmp     lb_flush

disk_check:
        incq    STATUS+ST_DISK_CHECKED
        mov     $DISKBUF, %esi
        mov     $RDBUF, %edi
        mov     $64, %ecx
        repe cmpsq
        je      disk_write_record
        incq    STATUS+ST_DISK_BAD
        call    lb_begin
        mov     $s_dmm_want, %esi
        mov     DISKBUF+8, %rax
        call    lb_kv
        mov     $s_dmm_got, %esi
        call    lb_str
        mov     RDBUF, %rax
        mov     $DISK_MAGIC, %rcx
        cmp     %rcx, %rax
        jne     1f
        mov     RDBUF+8, %rax
        call    lb_dec
        jmp     2f
1:      mov     $s_garbage, %esi
        call    lb_str
2:      call    lb_flush
        jmp     disk_write_record       /* RAM is the truth from here on */

/* ---------------- NE2000 (polled, transmit only) ----------------
 * One UDP/IPv4 datagram per I/O cycle, 74 bytes (no padding needed):
 *   0  dst ff:ff:ff:ff:ff:ff (broadcast: no ARP), 6 src = PROM MAC,
 *   12 type 0x0800
 *   14 IPv4: 0x45, TOS 0, length 60, ID 0, DF, TTL 64, proto 17, header
 *      checksum, src net_src_ip, dst net_dst_ip
 *   34 UDP: net_src_port -> net_dst_port, length 40, checksum 0 (none)
 *   42 "PGNET002", 50 counter u64, 58 send seq u64 (1, 2, ...), 66 TSC u64
 * The IPv4 header never changes (fixed ID and length), so net_init sums it
 * once.  The frame is copied with 32-bit remote-DMA writes (QEMU's ne2000
 * accepts them; real 16-bit cards would need outsw). */
        .set FRAME_LEN, 74
        .set FRAME_DMA, 76             /* whole dwords */

        .macro  NEOUT reg, val          /* out val -> nicbase+reg  (r9 = base) */
        lea     \reg(%r9), %edx
        mov     $\val, %al
        out     %al, %dx
        .endm

net_init:
        mov     PARAMS+P_NIC_BASE, %r9d
        mov     %r9, STATUS+V_NIC
        lea     0x1F(%r9), %edx         /* reset */
        in      %dx, %al
        out     %al, %dx
        lea     0x07(%r9), %edx
        mov     $100000, %ecx
1:      in      %dx, %al
        test    $0x80, %al              /* ISR.RST */
        jnz     2f
        dec     %ecx
        jnz     1b
        jmp     net_fail
2:      NEOUT   0x00, 0x21              /* page 0, stop, abort DMA */
        NEOUT   0x0E, 0x48              /* DCR: byte-wide, normal */
        NEOUT   0x0A, 0
        NEOUT   0x0B, 0
        NEOUT   0x0C, 0x20              /* RCR: monitor (store nothing) */
        NEOUT   0x0D, 0x02              /* TCR: loopback during init */
        NEOUT   0x01, 0x46              /* PSTART */
        NEOUT   0x02, 0x80              /* PSTOP */
        NEOUT   0x03, 0x46              /* BNRY */
        NEOUT   0x07, 0xFF              /* clear ISR */
        NEOUT   0x0F, 0x00              /* IMR: polled */
        /* read station address PROM (bytes are doubled in byte mode) */
        NEOUT   0x0A, 12
        NEOUT   0x0B, 0
        NEOUT   0x08, 0
        NEOUT   0x09, 0
        NEOUT   0x00, 0x0A              /* remote read */
        lea     0x10(%r9), %edx
        mov     $NETBUF+6, %edi
        mov     $6, %ecx
3:      in      %dx, %al
        stosb
        in      %dx, %al
        dec     %ecx
        jnz     3b
        NEOUT   0x07, 0x40              /* clear RDC */
        /* page 1: PAR, CURR, MAR */
        NEOUT   0x00, 0x61
        mov     $NETBUF+6, %esi
        lea     0x01(%r9), %edx
        mov     $6, %ecx
4:      lodsb
        out     %al, %dx
        inc     %edx
        dec     %ecx
        jnz     4b
        NEOUT   0x07, 0x47              /* CURR */
        lea     0x08(%r9), %edx
        mov     $8, %ecx
        xor     %al, %al
5:      out     %al, %dx
        inc     %edx
        dec     %ecx
        jnz     5b
        NEOUT   0x00, 0x22              /* page 0, start */
        NEOUT   0x0D, 0x00              /* TCR normal */
        NEOUT   0x0E, 0x49              /* DCR word-wide */
        NEOUT   0x04, 0x40              /* TPSR: tx buffer at 0x4000 */
        NEOUT   0x05, FRAME_LEN         /* TBCR */
        NEOUT   0x06, 0
        /* frame template (parameters 0 -> defaults) */
        mov     $NETBUF, %edi
        movl    $0xFFFFFFFF, (%rdi)
        movw    $0xFFFF, 4(%rdi)
        movw    $0x0008, 12(%rdi)       /* IPv4 */
        movl    $0x3C000045, 14(%rdi)   /* 4/5, TOS 0, total length 60 */
        movl    $0x00400000, 18(%rdi)   /* ID 0, DF, offset 0 */
        movl    $0x00001140, 22(%rdi)   /* TTL 64, UDP, checksum below */
        mov     PARAMS+P_NET_SRC_IP, %eax
        test    %eax, %eax
        jnz     1f
        mov     $0x0200000A, %eax       /* 10.0.0.2 */
1:      mov     %eax, 26(%rdi)
        mov     PARAMS+P_NET_DST_IP, %eax
        test    %eax, %eax
        jnz     1f
        mov     $0xFFFFFFFF, %eax       /* 255.255.255.255 */
1:      mov     %eax, 30(%rdi)
        movzwl  PARAMS+P_NET_SRC_PORT, %eax
        test    %eax, %eax
        jnz     1f
        mov     $7777, %eax
1:      xchg    %al, %ah
        mov     %ax, 34(%rdi)
        movzwl  PARAMS+P_NET_DST_PORT, %eax
        test    %eax, %eax
        jnz     1f
        mov     $7777, %eax
1:      xchg    %al, %ah
        mov     %ax, 36(%rdi)
        movl    $0x00002800, 38(%rdi)   /* UDP length 40, checksum 0 */
        mov     $0x32303054454E4750, %rax   /* "PGNET002" */
        mov     %rax, 42(%rdi)
        xor     %eax, %eax
        mov     %rax, 50(%rdi)
        mov     %rax, 58(%rdi)
        mov     %rax, 66(%rdi)
        movw    %ax, 74(%rdi)
        /* one's complement sum of the header's words: byte order does not
         * matter as long as the result is stored the way it was loaded */
        xor     %ecx, %ecx
6:      movzwl  14(%rdi,%rcx,2), %edx
        add     %edx, %eax
        inc     %ecx
        cmp     $10, %ecx
        jb      6b
        mov     %eax, %edx
        shr     $16, %edx
        and     $0xFFFF, %eax
        add     %edx, %eax
        mov     %eax, %edx
        shr     $16, %edx
        add     %edx, %eax
        not     %eax
        mov     %ax, 24(%rdi)
        /* report: N mac=... udp=src:port>dst:port */
        call    lb_begin
        mov     $s_n_mac, %esi
        call    lb_str
        mov     $NETBUF+6, %esi
        mov     $6, %ecx
7:      movzbl  (%rsi), %eax
        mov     %eax, %edx
        shr     $4, %edx
        movb    hexdig(%rdx), %dl
        mov     %dl, (%rdi)
        and     $15, %eax
        movb    hexdig(%rax), %al
        mov     %al, 1(%rdi)
        movb    $':', 2(%rdi)
        add     $3, %rdi
        inc     %rsi
        dec     %ecx
        jnz     7b
        dec     %rdi
        mov     $s_n_udp, %esi
        call    lb_str
        mov     $NETBUF+26, %r10d
        mov     $NETBUF+34, %r11d
        call    lb_ipport
        movb    $'>', (%rdi)
        inc     %rdi
        mov     $NETBUF+30, %r10d
        mov     $NETBUF+36, %r11d
        call    lb_ipport
        jmp     lb_flush

/* append "a.b.c.d:port", both in network order at r10 and r11 */
lb_ipport:
        lea     4(%r10), %r9
1:      movzbl  (%r10), %eax
        call    lb_dec
        movb    $'.', (%rdi)
        inc     %rdi
        inc     %r10
        cmp     %r9, %r10
        jb      1b
        movb    $':', -1(%rdi)
        movzwl  (%r11), %eax
        xchg    %al, %ah
        jmp     lb_dec

net_fail:
        andq    $~F_NET, STATUS+V_FLAGS
        call    lb_begin
        mov     $s_neterr, %esi
        call    lb_str
        jmp     lb_flush

/* ~25 port accesses: RBCR0, RSAR0/1, CR, 19 x outl, CR(transmit), ISR.
 * The sequence number counts datagrams handed to the NIC, so a gap in a
 * capture is a datagram lost (or not sent: net_err). */
net_send:
        mov     STATUS+V_NIC, %r9
        incq    STATUS+ST_NET_SEQ
        mov     %r15, NETBUF+50
        mov     STATUS+ST_NET_SEQ, %rax
        mov     %rax, NETBUF+58
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, NETBUF+66
        NEOUT   0x0A, FRAME_DMA         /* remote byte count (RBCR1 is 0) */
        NEOUT   0x08, 0x00              /* remote start address 0x4000 */
        NEOUT   0x09, 0x40
        NEOUT   0x00, 0x12              /* remote write, start */
        lea     0x10(%r9), %edx
        mov     $NETBUF, %esi
        mov     $FRAME_DMA / 4, %ecx
        rep outsl
        NEOUT   0x00, 0x26              /* start + transmit (TPSR/TBCR preset) */
        lea     0x07(%r9), %edx
        in      %dx, %al                /* ISR */
        mov     %al, %cl
        mov     $0x4A, %al              /* ack RDC | TXE | PTX */
        out     %al, %dx
        test    $0x08, %cl              /* TXE */
        jnz     1f
        test    $0x02, %cl              /* PTX */
        jz      1f
        incq    STATUS+ST_NET_TX
        ret
1:      incq    STATUS+ST_NET_ERR
        ret
