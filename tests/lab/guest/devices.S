/* devices.S - disk and NIC code for counter-guest (ring 3, included by guest.S) */

/* ---------------- ATA disk (primary channel, LBA28) ----------------
 * Default: bus-master DMA through the PCI IDE function (PIIX), ~12 port
 * accesses per write.  Flag F_DISK_PIO (or no PCI IDE found): classic PIO,
 * WRITE SECTORS + rep outsw (256 word writes = 256 I/O exits).
 * Completion of a write is checked at the next period; if the drive is
 * still busy that period's write is skipped (disk_busy). */
        .set PRD, 0x1480              /* PRD table (8 bytes) */

disk_init:
        mov     $0x3F6, %dx             /* device control: nIEN */
        mov     $0x02, %al
        out     %al, %dx
        mov     $DISKBUF, %edi          /* zero the sector buffer */
        mov     $64, %ecx
        xor     %eax, %eax
        rep stosq
        mov     $0x31304B5349444750, %rax   /* "PGDISK01" */
        mov     %rax, DISKBUF
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
        movl    $DISKBUF, PRD           /* one PRD: 512 bytes, end of table */
        movl    $0x80000200, PRD+4
        mov     STATUS+V_BMBASE, %rdx
        xor     %al, %al
        out     %al, %dx                /* BM command: stopped */
        add     $4, %edx
        mov     $PRD, %eax
        out     %eax, %dx               /* PRD table address */
3:      call    lb_begin
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
        jmp     lb_flush

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

/* program LBA28 task file and issue command %cl */
ata_issue:
        mov     STATUS+V_LBA, %rax
        mov     PARAMS+P_DISK_DRIVE, %esi
        and     $1, %esi
        shl     $4, %esi
        mov     %eax, %r8d
        shr     $24, %r8d
        and     $0x0F, %r8d
        or      %r8d, %esi
        or      $0xE0, %esi
        mov     %eax, %r8d
        mov     $0x1F6, %dx
        mov     %esi, %eax
        out     %al, %dx                /* drive/head + LBA 27:24 */
        mov     $0x1F2, %dx
        mov     $1, %al
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
        mov     %cl, %al
        out     %al, %dx
        ret

disk_write:
        mov     $0x1F7, %dx
        in      %dx, %al
        test    $0x88, %al              /* BSY or DRQ: previous write busy */
        jnz     8f
        mov     %eax, %r11d             /* r11 = ATA status */
        mov     STATUS+V_BMBASE, %rdx
        test    %rdx, %rdx
        jz      5f
        /* ---- DMA ---- */
        add     $2, %edx
        in      %dx, %al                /* BM status */
        test    $0x01, %al              /* still active */
        jnz     8f
        cmpq    $0, STATUS+V_DMA_PEND
        je      2f
        movq    $0, STATUS+V_DMA_PEND
        mov     %eax, %r10d
        sub     $2, %edx
        xor     %al, %al
        out     %al, %dx                /* BM stop */
        test    $0x02, %r10b            /* BM error */
        jnz     1f
        test    $0x01, %r11b            /* ATA ERR */
        jnz     1f
        incq    STATUS+ST_DISK_OK
        jmp     2f
1:      incq    STATUS+ST_DISK_ERR
2:      call    disk_fill
        mov     STATUS+V_BMBASE, %rdx
        add     $2, %edx
        mov     $0x06, %al
        out     %al, %dx                /* clear BM irq/error */
        mov     $0xCA, %cl              /* WRITE DMA */
        call    ata_issue
        mov     STATUS+V_BMBASE, %rdx
        mov     $0x01, %al              /* start, memory -> device */
        out     %al, %dx
        movq    $1, STATUS+V_DMA_PEND
        ret
        /* ---- PIO ---- */
5:      test    $0x01, %r11b            /* ERR from previous command */
        jz      6f
        incq    STATUS+ST_DISK_ERR
6:      call    disk_fill
        mov     $0x30, %cl              /* WRITE SECTORS */
        call    ata_issue
        mov     $100000, %ecx
3:      in      %dx, %al
        test    $0x80, %al
        jnz     4f
        test    $0x01, %al
        jnz     7f
        test    $0x08, %al
        jnz     9f
4:      dec     %ecx
        jnz     3b
7:      incq    STATUS+ST_DISK_ERR
        ret
9:      mov     $DISKBUF, %esi
        mov     $256, %ecx
        mov     $0x1F0, %dx
        rep outsw
        incq    STATUS+ST_DISK_OK
        ret
8:      incq    STATUS+ST_DISK_BUSY
        ret

disk_fill:
        mov     %r15, DISKBUF+8         /* counter */
        mov     STATUS+ST_PERIODS, %rax
        mov     %rax, DISKBUF+16        /* period number */
        mov     %r13, DISKBUF+24        /* TSC */
        ret

/* ---------------- NE2000 (polled, transmit only) ----------------
 * Frame: broadcast, src = PROM MAC, ethertype 0x88B5, 60 bytes:
 *   14 "PGCTCN01", 22 counter u64, 30 period u64, 38 TSC u64, rest 0.
 * The frame is copied with 32-bit remote-DMA writes (QEMU's ne2000 accepts
 * them; real 16-bit cards would need outsw). */
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
        NEOUT   0x05, 60                /* TBCR = 60 */
        NEOUT   0x06, 0
        /* frame template: dst broadcast, src = MAC, type 0x88B5 */
        mov     $NETBUF, %edi
        movl    $0xFFFFFFFF, (%rdi)
        movw    $0xFFFF, 4(%rdi)
        movw    $0xB588, 12(%rdi)
        lea     14(%rdi), %rdi
        mov     $0x31304E4354434750, %rax   /* "PGCTCN01" magic */
        stosq
        xor     %eax, %eax
        mov     $5, %ecx                /* counter, seq, tsc + pad to 60 */
        rep stosq
        /* report */
        call    lb_begin
        mov     $s_n_mac, %esi
        call    lb_str
        mov     $NETBUF+6, %esi
        mov     $6, %ecx
6:      movzbl  (%rsi), %eax
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
        jnz     6b
        dec     %rdi
        jmp     lb_flush

net_fail:
        andq    $~F_NET, STATUS+V_FLAGS
        call    lb_begin
        mov     $s_neterr, %esi
        call    lb_str
        jmp     lb_flush

/* ~21 port accesses: RBCR0, RSAR0/1, CR, 15 x outl, CR(transmit), ISR */
net_send:
        mov     STATUS+V_NIC, %r9
        mov     %r15, NETBUF+22
        mov     STATUS+ST_PERIODS, %rax
        mov     %rax, NETBUF+30
        mov     %r13, NETBUF+38
        NEOUT   0x0A, 60                /* remote byte count (RBCR1 is 0) */
        NEOUT   0x08, 0x00              /* remote start address 0x4000 */
        NEOUT   0x09, 0x40
        NEOUT   0x00, 0x12              /* remote write, start */
        lea     0x10(%r9), %edx
        mov     $NETBUF, %esi
        mov     $15, %ecx
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
